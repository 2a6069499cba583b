/**
 * Assembles a running gateway from a validated config: builds each step once, starts the
 * listener(s), and offers a graceful close. Side effects (clock, logs, audit sink) come in from
 * the command that starts it.
 */
import type { Server } from 'node:http';
import type { Config } from '../config/schema.ts';
import { parseListen } from '../config/schema.ts';
import { createUpstream } from '../proxy/upstream.ts';
import { createHandler } from '../pipeline/handler.ts';
import { auditClientErrors, createRefusal, recordCutHeads } from './client-error.ts';
import { refuseConnect } from './connect.ts';
import type { Handler } from '../pipeline/handler.ts';
import { createReadBody } from '../pipeline/read-body.ts';
import { createResponseHead } from '../proxy/response-headers.ts';
import { createRequestHeaders } from '../proxy/request-headers.ts';
import { createHostRule, createSiteCheck } from '../pipeline/site.ts';
import { createCors } from './cors.ts';
import { KeyShares } from '../proxy/key-shares.ts';
import { BufferBudget } from '../proxy/body-buffer.ts';
import { defaultBufferedBytes } from './buffer-default.ts';
import type { Clock, Observer } from '../pipeline/ports.ts';
import { createRouter } from './routes.ts';
import type { Route } from './routes.ts';
import { createReadiness, liveness, probeConnect } from './health.ts';
import { compileTimeouts } from '../proxy/timeouts.ts';
import { bindAddress, listen } from './listen.ts';
import { createDurable, createSteps } from './steps.ts';
import { createStepsHolder, reloadSteps } from './reload.ts';
import type { ReloadOutcome } from './reload.ts';
import type { Logger } from '../log/types.ts';
import type { OAuthTuning } from '../auth/oauth/authenticator.ts';
import { createYoungSweep } from './young-sweep.ts';

/** Reserved paths answered whatever the Host (load balancers probe by IP address). */
const PROBES: ReadonlySet<string> = new Set(['/healthz', '/readyz']);
/**
 * How long, after the shutdown's grace, the responses it ended have to reach their clients (an error
 * event or a 503: a few hundred bytes) before their connections are cut.
 */
export const FLUSH_MS = 250;

export interface GatewayDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly observer: Observer;
  /** Extra reserved routes (metrics). */
  readonly routes?: ReadonlyMap<string, Route>;
  /** Shorter OAuth key-fetch timings (tests). */
  readonly oauthTuning?: OAuthTuning;
  /** Counts a definition first seen not as pinned (the metric). */
  readonly pinViolation?: (kind: 'tools' | 'prompts', name: string) => void;
}

export interface Gateway {
  readonly url: string;
  readonly mcpUrl: string;
  readonly server: Server;
  readonly handler: Handler;
  /** Bytes held for bodies now, and the ceiling (limits.max_buffered_bytes). */
  /** The peeks for refused requests' ids read against this one (failure.ts). */
  readonly peekBudget: BufferBudget;
  readonly budget: BufferBudget;
  /** The config the gateway runs with (settings that need a restart keep their value from start). */
  currentConfig(): Config;
  /**
   * Applies a validated config: rebuilds the steps and swaps them in one step, ends the GET streams
   * of principals it refuses, and says which changed settings need a restart (those keep running).
   */
  reload(next: Config): Promise<ReloadOutcome>;
  /** Stops accepting, lets in-flight requests finish up to graceMs, then closes what remains. */
  close(graceMs: number): Promise<{ forced: number }>;
}

export async function startGateway(
  config: Config,
  deps: GatewayDeps,
  listenOverride?: string,
): Promise<Gateway> {
  const upstream = createUpstream({
    url: config.upstream.url,
    headersTimeoutMs: config.upstream.timeout,
    connections: config.upstream.connections,
  });
  const durable = await createDurable(config, deps);
  const holder = createStepsHolder(await createSteps(config, deps, durable));
  const publicUrl = config.public_url === undefined ? undefined : new URL(config.public_url);
  // X-Forwarded-Host: the host clients use (public_url), else the address the gateway listens on.
  let forwardedHost = publicUrl?.host ?? '';
  const address = parseListen(listenOverride ?? config.listen);
  if (!address) throw new TypeError('invalid listen address');
  // What is bound decides the Host rule, not how the address was spelled.
  const bindHost = await bindAddress(address.host);
  const cors = createCors(config.cors.allowed_origins, config.upstream.forward_headers);
  const budget = new BufferBudget(config.limits.max_buffered_bytes ?? defaultBufferedBytes());
  // A sixteenth of the budget (16 KiB to 16 MiB) for the peeks of refused requests' ids.
  const peekBudget = new BufferBudget(
    Math.max(16 * 1024, Math.min(Math.floor(budget.limit / 16), 16 * 1024 * 1024)),
  );
  const sweep = createYoungSweep();
  const handler = createHandler({
    upstream,
    requestHeaders: createRequestHeaders({
      forward: config.upstream.forward_headers,
      staticHeaders: config.upstream.headers,
      forwardedHost: () => forwardedHost,
      forwardedProto: publicUrl?.protocol === 'https:' ? 'https' : 'http',
    }),
    checkSite: createSiteCheck({
      listenHost: bindHost,
      publicUrl,
      allowedHosts: config.server.allowed_hosts,
      cors,
    }),
    cors,
    responseHead: createResponseHead({
      pass: config.upstream.pass_headers,
      warn: (fields, message) => deps.log.warn(fields, message),
      now: deps.clock.mono,
    }),
    keepaliveMs: config.streams.keepalive,
    sendTimeoutMs: config.limits.send_timeout,
    readBody: createReadBody(config.limits.max_body_bytes, budget, sweep),
    budget,
    peekBudget,
    // A key's bodies may hold a quarter of the budget, at least one body of the largest size.
    shares: new KeyShares(budget, Math.max(config.limits.max_body_bytes, Math.floor(budget.limit / 4))),
    sweep,
    steps: holder,
    headersTimeout: compileTimeouts(config.upstream),
    transport: durable.transport,
    observer: deps.observer,
    clock: deps.clock,
  });
  const oauth = durable.oauth;
  const readiness = createReadiness(
    upstream,
    deps.clock.mono,
    oauth ? () => ({ oauth: oauth.status() }) : undefined,
    () => (deps.observer.accepting?.() === false ? 'audit log unavailable' : undefined),
  );
  const reserved = new Map<string, Route>([
    // Past EPIPE on stdout or stderr every request is refused until a restart: the probe asks for one.
    ['/healthz', liveness(() => (deps.observer.auditLost?.() === true ? 'audit output lost' : undefined))],
    ['/readyz', readiness.route],
    ...(oauth?.routes ?? []),
  ]);
  for (const [path, route] of deps.routes ?? []) reserved.set(path, route);
  const mcpPath = new URL(config.upstream.url).pathname;
  const { server, url } = await listen(
    createRouter({
      mcp: { path: mcpPath, route: handler },
      reserved,
      hostAllowed: createHostRule(bindHost, config.server.allowed_hosts, publicUrl),
      probes: PROBES,
      refuse: createRefusal(deps.observer, deps.clock),
    }),
    bindHost,
    address.port,
    true,
  );
  if (publicUrl === undefined) forwardedHost = new URL(url).host;
  // Requests Node's parser refuses get their answer and their audit line too.
  auditClientErrors(server, deps.observer, deps.clock);
  refuseConnect(server, deps.clock, deps.observer);

  // Say so at start when the upstream does not answer (requests would get 502 until it does).
  void probeConnect(config.upstream.url).then((err) => {
    if (err === undefined) return;
    deps.log.warn(
      { upstream: upstream.origin, code: (err as NodeJS.ErrnoException).code },
      'upstream does not answer at start (no connection): requests get 502 until it does (check upstream.url and that the MCP server runs)',
    );
  });

  let closing: Promise<{ forced: number }> | undefined;
  async function close(graceMs: number): Promise<{ forced: number }> {
    handler.drain();
    readiness.markDraining();
    server.close();
    server.closeIdleConnections();
    handler.endStreams();
    const deadline = deps.clock.mono() + graceMs;
    while (handler.inflight.size > 0 && deps.clock.mono() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      server.closeIdleConnections();
    }
    const forced = handler.inflight.size;
    // What the upstream is still answering ends as a stream the gateway ends: an error for each
    // request it owes (or 503 before its head), given a moment to reach its client and finish.
    handler.endInflight();
    const flushed = deps.clock.mono() + FLUSH_MS;
    while (handler.inflight.size > 0 && deps.clock.mono() < flushed) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // Before the answers still going out are cut: destroying one destroys its connection, and a
    // head pipelined behind it, half read, was then passed over as already closed (no line).
    const cutHeads = recordCutHeads(server, deps.observer, deps.clock);
    for (const ctx of handler.inflight) ctx.res.destroy();
    server.closeAllConnections();
    // Let the 'close' events (and their audit lines) run before the pools go.
    await Promise.all([cutHeads, new Promise((r) => setImmediate(r))]);
    // Everything still open was given its grace period: destroy, don't wait.
    await Promise.allSettled([upstream.destroy(), durable.close()]);
    return { forced };
  }

  let running = config;
  return {
    url,
    mcpUrl: url + mcpPath,
    server,
    handler,
    currentConfig: () => running,
    async reload(next) {
      let outcome = await reloadSteps(running, next, {
        holder,
        handler,
        build: (effective) => createSteps(effective, deps, durable),
        now: deps.clock.now,
      });
      // The HTTP+SSE transport keeps the pins read at start: a lockfile written since (`mcpgate pin`
      // against the server over Streamable HTTP) is not read, and the reload says so, as it says of
      // a changed pinning setting (reload.ts), rather than "config reloaded" alone.
      if (!outcome.restart.some((p) => p.startsWith('pinning')) && durable.lockfileChanged?.() === true)
        outcome = { ...outcome, restart: [...outcome.restart, 'pinning.lockfile'] };
      if (outcome.applied) running = outcome.config;
      return outcome;
    },
    budget,
    peekBudget,
    close: (graceMs) => (closing ??= close(graceMs)),
  };
}

/**
 * Everything `mcpgate serve` runs, assembled from a config: operational logger, audit log,
 * metrics, the gateway, and their orderly shutdown. The CLI adds signals; tests call it directly.
 */
import { refuseConnect } from './connect.ts';
import type { Config } from '../config/schema.ts';
import { startGateway } from './gateway.ts';
import type { Gateway } from './gateway.ts';
import type { ReloadOutcome } from './reload.ts';
import { bindAddress, listen } from './listen.ts';
import { createHostRule } from '../pipeline/site.ts';
import { createRouter } from './routes.ts';
import type { Route } from './routes.ts';
import type { Clock, Observer } from '../pipeline/ports.ts';
import type { Logger } from '../log/types.ts';
import { createAuditLog } from '../audit/audit.ts';
import type { AuditLog } from '../audit/audit.ts';
import type { AuditWriter } from '../audit/writer.ts';
import { createObserver } from '../audit/observer.ts';
import { createMetrics } from '../metrics/metrics.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { metricsRoute } from '../metrics/route.ts';
import { KNOWN_METHODS } from '../policy/methods.ts';
import { parseListen } from '../config/schema.ts';
import { createRateLimitedLog } from '../log/rate-limited.ts';
import { createUpstreamLog } from '../proxy/upstream-log.ts';
import type { Server } from 'node:http';
import type { OAuthTuning } from '../auth/oauth/authenticator.ts';
import { startIdleReclaim } from './idle-reclaim.ts';

export interface RuntimeDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Overrides `listen` (the --listen flag, $MCPGATE_LISTEN, or 127.0.0.1:0 in tests). */
  readonly listen?: string | undefined;
  /** Replaces the audit destination (tests). */
  readonly auditWriter?: AuditWriter;
  /** Also told about every finished request and upstream failure (tests, embedding). */
  readonly tap?: Pick<Observer, 'finish' | 'upstreamError'>;
  /** Shorter OAuth key-fetch timings (tests). */
  readonly oauthTuning?: OAuthTuning;
}

export interface Runtime {
  readonly gateway: Gateway;
  readonly audit: AuditLog;
  readonly metrics: Metrics | undefined;
  readonly metricsUrl: string | undefined;
  /** Applies a validated config live (see reload.ts); metric labels follow the new keys. */
  reload(next: Config): Promise<ReloadOutcome>;
  /** Graceful stop: drain requests (up to the grace period), then flush the audit log. */
  close(graceMs?: number): Promise<{ forced: number }>;
}

/** How long close() waits for cut requests to finish after the grace period (then gives up). */
export const FINISH_WAIT_MS = 2000;

export async function startRuntime(config: Config, deps: RuntimeDeps): Promise<Runtime> {
  const { log, clock } = deps;
  const audit = createAuditLog(config.audit, {
    onError: (err) =>
      log.error(
        { err: { message: err.message, code: (err as NodeJS.ErrnoException).code } },
        'audit write failed',
      ),
    onRefusing: (refusing) =>
      refusing
        ? log.error(
            // stdout or stderr whose reader went away takes no line again (the writer's lost()).
            audit.lost()
              ? 'audit output lost its reader: MCP requests are refused (503) until a restart'
              : 'audit output is not taking lines: MCP requests are refused (503) until it does',
          )
        : log.warn('audit backlog written: MCP requests are served again'),
    ...(deps.auditWriter ? { writer: deps.auditWriter } : {}),
  });
  const metrics = config.metrics.enabled
    ? createMetrics({
        knownMethods: KNOWN_METHODS,
        ...metricLabels(config),
      })
    : undefined;
  const recorded = createObserver({
    clock,
    audit,
    metrics,
    onError: (err, where) =>
      log.error({ where, err: { message: (err as Error).message } }, 'observer failed'),
  });
  const tap = deps.tap;
  const upstreamFailed = createUpstreamLog(createRateLimitedLog(log, { now: clock.mono }), {
    origin: new URL(config.upstream.url).origin,
    headersTimeoutMs: config.upstream.timeout,
  });
  const observer: Observer = {
    ...recorded,
    finish(ctx) {
      recorded.finish(ctx);
      tap?.finish(ctx);
    },
    upstreamError(kind, error) {
      recorded.upstreamError(kind);
      upstreamFailed(kind, error);
      tap?.upstreamError(kind);
    },
  };
  const routes = new Map<string, Route>();
  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (metrics) {
    const route = metricsRoute(metrics, (err) =>
      log.error({ err: { message: (err as Error).message } }, 'metrics render failed'),
    );
    if (config.metrics.listen === undefined) routes.set('/metrics', route);
    else {
      const address = parseListen(config.metrics.listen);
      if (!address) throw new TypeError('invalid metrics.listen');
      const bindHost = await bindAddress(address.host);
      const started = await listen(
        createRouter({
          reserved: new Map([['/metrics', route]]),
          hostAllowed: createHostRule(
            bindHost,
            config.server.allowed_hosts,
            config.public_url === undefined ? undefined : new URL(config.public_url),
          ),
        }),
        bindHost,
        address.port,
      );
      metricsServer = started.server;
      refuseConnect(metricsServer, deps.clock);
      metricsUrl = `${started.url}/metrics`;
    }
  }
  let gateway: Gateway;
  try {
    gateway = await startGateway(
      config,
      {
        clock,
        log,
        env: deps.env,
        observer,
        routes,
        ...(deps.oauthTuning ? { oauthTuning: deps.oauthTuning } : {}),
        ...(metrics
          ? {
              pinViolation: (kind: 'tools' | 'prompts', name: string) => metrics.pinViolation(kind, name),
            }
          : {}),
      },
      deps.listen,
    );
  } catch (err) {
    metricsServer?.close();
    await audit.close();
    throw err;
  }
  metricsUrl ??= metrics ? `${gateway.url}/metrics` : undefined;
  const idle =
    config.limits.idle_reclaim > 0
      ? startIdleReclaim({ afterMs: config.limits.idle_reclaim, log })
      : undefined;

  let closing: Promise<{ forced: number }> | undefined;
  return {
    gateway,
    audit,
    metrics,
    metricsUrl,
    async reload(next) {
      const outcome = await gateway.reload(next);
      if (outcome.applied) metrics?.reconfigure(metricLabels(outcome.config));
      return outcome;
    },
    close(graceMs = config.shutdown.grace) {
      closing ??= (async () => {
        idle?.stop();
        const result = await gateway.close(graceMs);
        // A request cut at the end of the grace period finishes (and writes its audit line) only
        // when its socket has closed, a loop turn or more later: wait for it before closing the log.
        await finished(gateway.handler.inflight, clock, FINISH_WAIT_MS);
        metricsServer?.closeAllConnections();
        metricsServer?.close();
        await audit.close();
        return result;
      })();
      return closing;
    },
  };
}

/**
 * Bounded label sets: the configured key labels, and the exact tool and prompt names of every
 * allowlist (the keys' and the OAuth grants': behind OAuth alone, every call was `other`).
 */
function metricLabels(config: Config): { knownTools: string[]; knownPrompts: string[]; keyLabels: string[] } {
  const lists = [...config.keys, ...(config.auth.oauth?.grants ?? [])];
  const exact = (names: readonly string[]) => names.filter((name) => !name.includes('*'));
  return {
    knownTools: lists.flatMap((list) => exact(list.allow)),
    knownPrompts: lists.flatMap((list) => exact(list.prompts)),
    keyLabels: config.keys.map((k) => k.label),
  };
}

/** Resolves when nothing is in flight any more, or after `limitMs`. */
async function finished(inflight: { readonly size: number }, clock: Clock, limitMs: number): Promise<void> {
  const deadline = clock.mono() + limitMs;
  while (inflight.size > 0 && clock.mono() < deadline) await new Promise((r) => setTimeout(r, 5));
}

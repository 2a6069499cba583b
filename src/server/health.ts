/**
 * `/healthz`: the process is up. `/readyz`: the upstream answers (any HTTP response counts; an
 * OPTIONS request has no side effects) and the gateway is not shutting down. The readiness probe
 * result is cached briefly so a busy prober cannot load the upstream.
 */
import { connect } from 'node:net';
import type { Route } from './routes.ts';
import { sendPlainJson } from './routes.ts';
import type { Upstream } from '../proxy/upstream.ts';

export const healthz: Route = (_req, res) => sendPlainJson(res, 200, { status: 'ok' });

/**
 * `/healthz` of a process that may be unable to serve for good (`down` gives the reason): 503 then,
 * so that the liveness probe restarts it. Nothing that passes (an upstream outage, a full disk that
 * will drain) makes it fail: a restart would not help there, and would drop the lines waiting.
 */
export function liveness(down: () => string | undefined): Route {
  return (req, res) => {
    const reason = down();
    if (reason === undefined) return healthz(req, res);
    sendPlainJson(res, 503, { status: reason });
  };
}

export interface Readiness {
  readonly route: Route;
  /** Reports not-ready from now on (shutdown). */
  markDraining(): void;
}

const CACHE_MS = 1000;
const PROBE_TIMEOUT_MS = 2000;

/**
 * `details` adds fields to the body (the OAuth signing keys' state). They never make the gateway
 * unready: tokens whose keys are cached keep validating while the authorization server is down, and
 * an outage there must not take every replica out of the load balancer.
 */
/**
 * Sends the upstream an OPTIONS request; resolves to the error when it does not answer within
 * PROBE_TIMEOUT_MS, all told. It goes through the streams' pool, which has no connection cap: in
 * the requests' pool it would wait behind calls holding every connection (a key's long tool calls
 * could keep the probe, and so the replica's readiness, waiting for minutes), and the headers
 * timeout starts only once a connection is found.
 */
export async function probeUpstream(upstream: Upstream): Promise<Error | undefined> {
  try {
    const { body } = await upstream.streams.request({
      path: upstream.path,
      method: 'OPTIONS',
      headersTimeout: PROBE_TIMEOUT_MS,
      bodyTimeout: PROBE_TIMEOUT_MS,
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
    await body.dump();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

/**
 * Opens (and closes) one TCP connection to the upstream, sending nothing: the start-up check that
 * the upstream is there, without a request it would see. Resolves to the error when it fails.
 */
export function probeConnect(url: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<Error | undefined> {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    });
    socket.once('error', (err) => resolve(err));
  });
}

export function createReadiness(
  upstream: Upstream,
  mono: () => number,
  details?: () => Record<string, unknown>,
  /** A reason the gateway refuses every request now (the audit log not taking lines), else undefined. */
  blocked?: () => string | undefined,
): Readiness {
  let draining = false;
  let cached: { at: number; ok: boolean } | undefined;
  let pending: Promise<boolean> | undefined;

  const probe = async () => (await probeUpstream(upstream)) === undefined;

  const route: Route = (_req, res) => {
    if (draining) return sendPlainJson(res, 503, { status: 'draining' });
    const reason = blocked?.();
    if (reason !== undefined) return sendPlainJson(res, 503, { status: reason, ...details?.() });
    const now = mono();
    if (cached && now - cached.at < CACHE_MS) {
      return sendPlainJson(res, cached.ok ? 200 : 503, {
        status: cached.ok ? 'ready' : 'upstream unreachable',
        ...details?.(),
      });
    }
    pending ??= probe().finally(() => {
      pending = undefined;
    });
    void pending.then((ok) => {
      cached = { at: mono(), ok };
      sendPlainJson(res, ok ? 200 : 503, { status: ok ? 'ready' : 'upstream unreachable', ...details?.() });
    });
  };
  return {
    route,
    markDraining() {
      draining = true;
    },
  };
}

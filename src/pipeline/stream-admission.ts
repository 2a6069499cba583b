/**
 * The last checks before a stream is held open. A stream outlives its request, so it must be
 * allowed by the config and the credential that hold when it opens, not only by those its request
 * started with: a client can hold back the last bytes of a listen's body (or an OAuth verification
 * or a Redis prepay can be awaited) across a reload that removes its key, or across its credential's
 * expiry, and the reload ends only the streams already open (reload.ts), the expiry watch only
 * streams it watches (stream-expiry.ts).
 *
 * - The steps were swapped by a reload meanwhile: 503 with `Retry-After: 1`
 *   (`ERR_CONFIG_RELOADED`); the client opens the stream again and is judged by the new config.
 * - The credential has expired meanwhile: the refusal a request would get now (401, its challenge),
 *   made by authenticating again.
 */
import type { RequestContext } from './context.ts';
import type { PipelineSteps } from './handler.ts';
import { GatewayError } from '../jsonrpc/errors.ts';

const RELOADED = Object.freeze({ 'retry-after': '1' });

/** A stream refused (or ended before its answer) because a reload swapped the config: open it again. */
export function configReloaded(): GatewayError {
  return new GatewayError('ERR_CONFIG_RELOADED', { headers: RELOADED });
}

/**
 * Throws 503 `ERR_CONFIG_RELOADED` when a reload swapped the steps since the request took them. A
 * request is judged by the steps it started with, but a client decides when its body ends (or an
 * OAuth verification, a Redis decision is awaited): judged after the reload was done, it would reach
 * the upstream under a key the running config removed or narrowed. Checked after the last wait
 * before a request is forwarded or a stream held; the client sends it again and is judged anew.
 */
export function refuseIfReloaded(ctx: RequestContext, started: PipelineSteps, current: PipelineSteps): void {
  if (current === started) return;
  ctx.reason = 'ERR_CONFIG_RELOADED';
  throw configReloaded();
}

/** Undefined when the stream may open now; a promise that rejects with the refusal otherwise. */
export function admitStream(
  ctx: RequestContext,
  started: PipelineSteps,
  current: PipelineSteps,
  now: number,
): Promise<void> | undefined {
  refuseIfReloaded(ctx, started, current);
  const at = ctx.principal?.expiresAt;
  if (at === undefined || now < at) return undefined;
  return refusedNow(ctx, current);
}

async function refusedNow(ctx: RequestContext, steps: PipelineSteps): Promise<void> {
  const probe: RequestContext = { ...ctx, principal: undefined, reason: undefined };
  try {
    await steps.authenticate(probe);
  } catch (err) {
    ctx.reason = probe.reason;
    throw err;
  }
  // Accepted after all (the wall clock stepped back): the stream opens under what it found now.
  ctx.principal = probe.principal;
}

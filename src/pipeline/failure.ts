/**
 * What a failed request gets: the error's answer (or a cut connection when the client left) and
 * its audit decision; for a POST refused before its body was read, the request's id, read from a
 * small bounded peek of the body so the error still carries it; and for a POST refused for its
 * envelope or its body, a token taken all the same.
 */
import type { RequestContext } from './context.ts';
import { sendError, toGatewayError } from './respond.ts';
import { peekRequestId } from './peek-id.ts';
import { GatewayError, isGatewayError } from '../jsonrpc/errors.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';
import type { RateLimitStep } from './ports.ts';
import { bodyBytesRead } from './read-body.ts';

/** How much of an unauthenticated body is read to answer with its id. */
const AUTH_PEEK_BYTES = 16 * 1024;

/** Turns a failure of the request's steps into its answer (or a cut connection). */
export function fail(ctx: RequestContext, err: unknown): void {
  const error = toGatewayError(err);
  if (ctx.decision === 'allow') ctx.decision = decisionFor(error.code);
  if (error.code === 'ERR_CLIENT_ABORTED') {
    ctx.aborted = true;
    ctx.reason ??= error.code;
    ctx.res.destroy();
    return;
  }
  sendError(ctx, error);
}

/**
 * A refusal before the body is read still answers with the request's id: read a small body
 * (bounded, so a refused client cannot make the gateway hold much) just to find it.
 */
export async function withPeekedId(
  ctx: RequestContext,
  err: unknown,
  budget: BufferBudget,
): Promise<unknown> {
  if (ctx.req.method !== 'POST' || !isGatewayError(err) || err.rpcId !== undefined) return err;
  const peeked = await peekRequestId(ctx.req, AUTH_PEEK_BYTES, budget);
  ctx.bytesIn = peeked.bytes;
  return new GatewayError(err.code, {
    message: err.message,
    status: err.status,
    headers: { ...err.headers },
    rpcId: peeked.id,
  });
}

/**
 * A POST refused for its envelope or its body (415, 413) takes a token like any request (429 once
 * the bucket is empty, rate-limit.ts's chargeRefused), so a key that sends only these empties its
 * own bucket; its audit line says how many body bytes were read. Not charged: a client that left
 * mid-body (its decision stays `aborted`, as the audit promises), and a body refused because the
 * gateway holds too many (503 over the buffer budget): that is other clients' load, not this key's.
 */
export async function charged(ctx: RequestContext, err: unknown, rateLimit: RateLimitStep): Promise<unknown> {
  ctx.bytesIn = bodyBytesRead(ctx.req);
  const code = isGatewayError(err) ? err.code : undefined;
  if (code !== 'ERR_CLIENT_ABORTED' && code !== 'ERR_OVERLOADED') await rateLimit.chargeRefused(ctx);
  return err;
}

/**
 * A POST refused before its body was read (a forged session id, its envelope) takes its token
 * (charged), then answers with the id a small body holds, as a 401 does (withPeekedId); a 429 in
 * its place when the bucket was empty carries it too.
 */
export async function chargedWithPeekedId(
  ctx: RequestContext,
  err: unknown,
  rateLimit: RateLimitStep,
  budget: BufferBudget,
): Promise<unknown> {
  let refusal: unknown;
  try {
    refusal = await charged(ctx, err, rateLimit);
  } catch (limited) {
    refusal = limited;
  }
  return withPeekedId(ctx, refusal, budget);
}

function decisionFor(code: string): RequestContext['decision'] {
  if (code === 'ERR_CLIENT_ABORTED') return 'aborted';
  if (code === 'ERR_OVERLOADED') return 'rate_limited';
  if (code.startsWith('ERR_AUTH_')) return 'unauthenticated';
  if (code === 'ERR_RATE_LIMITED' || code === 'ERR_TOO_MANY_STREAMS') return 'rate_limited';
  if (code.startsWith('ERR_UPSTREAM_')) return 'upstream_error';
  if (code.endsWith('_DENIED') || code.endsWith('_UNPINNED') || code === 'ERR_SESSION_NOT_FOUND')
    return 'deny';
  if (code === 'ERR_RATE_LIMIT_STORE') return 'rate_limited';
  if (code === 'ERR_SHUTTING_DOWN') return 'deny';
  return 'invalid';
}

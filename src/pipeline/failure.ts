/**
 * What a failed request gets: the error's answer (or a cut connection when the client left) and
 * its audit decision; for a POST refused before its body was read, the request's id, read from a
 * small bounded peek of the body so the error still carries it (and, for one refused for its
 * bucket, the line its method); for a request refused before it prepaid its token, that token.
 */
import type { RequestContext } from './context.ts';
import { errorAnswer, sendError, sendJson, toGatewayError } from './respond.ts';
import { peekRequestId } from './peek-id.ts';
import { expectsContinue } from './read-body.ts';
import { GatewayError, isGatewayError } from '../jsonrpc/errors.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';
import type { PostRoute, RateLimitStep } from './ports.ts';

/** How much of an unauthenticated body is read to answer with its id. */
const AUTH_PEEK_BYTES = 16 * 1024;

/** Turns a failure of the request's steps into its answer (or a cut connection). */
export function fail(ctx: RequestContext, err: unknown): void {
  const error = toGatewayError(err);
  recordFailure(ctx, error.code);
  if (error.code === 'ERR_CLIENT_ABORTED') {
    ctx.aborted = true;
    ctx.res.destroy();
    return;
  }
  sendError(ctx, error);
}

/** The audit's decision and reason for a failure (a decision already taken stands). */
function recordFailure(ctx: RequestContext, code: ErrorCode): void {
  if (ctx.decision === 'allow') ctx.decision = decisionFor(code);
  ctx.reason ??= code;
}

/**
 * On the HTTP+SSE transport a request's answer goes on the client's GET stream (the POST gets 202):
 * a refusal after the body was read (invalid, unparsable with an id, rate limited) goes there too,
 * as a denial does (transport.ts judged), or a client waiting on that id would wait forever; the
 * POST's 202 carries the refusal's headers (Retry-After on a 429). False
 * when it cannot (no id to answer, no stream, its backlog full): the caller answers in the POST.
 */
export function failOnStream(ctx: RequestContext, err: unknown, route: PostRoute): boolean {
  const error = toGatewayError(err);
  if (error.code === 'ERR_CLIENT_ABORTED') return false;
  const body = errorAnswer(ctx, error);
  if (body === undefined) return false;
  const routed = route.judged({ bytes: EMPTY, answer: { status: error.status, body }, plans: undefined });
  if (routed.answer === undefined || routed.answer.body === body) return false;
  recordFailure(ctx, error.code);
  // The POST's answer keeps the refusal's headers (Retry-After, RateLimit): a client that reads
  // them backs off as it would from the 429 itself.
  sendJson(ctx, routed.answer.status, routed.answer.body, error.headers);
  return true;
}

const EMPTY = Buffer.alloc(0);

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
  // A client waiting for `100 Continue` sends no body to peek at: it was never invited to.
  if (expectsContinue(ctx.req)) return err;
  const peeked = await peekRequestId(ctx.req, AUTH_PEEK_BYTES, budget);
  ctx.bytesIn = peeked.bytes;
  // A key's request refused for its bucket before its body was read: the line and the metrics say
  // what it was, when a small body says (a method the gateway knows, else none is recorded).
  const call = peeked.call;
  if (ctx.decision === 'rate_limited' && ctx.calls.length === 0 && call !== undefined) {
    ctx.calls.push({
      rpc_method: call.method,
      rpc_id: peeked.id,
      ...(call.tool === undefined ? {} : { tool: call.tool }),
      ...(call.prompt === undefined ? {} : { prompt: call.prompt }),
      ...(call.resource === undefined ? {} : { resource: call.resource }),
      decision: 'rate_limited',
      reason: err.code,
    });
  }
  return new GatewayError(err.code, {
    message: err.message,
    status: err.status,
    headers: { ...err.headers },
    rpcId: peeked.id,
  });
}

/**
 * A request refused before it prepaid its token (rate-limit.ts: a session id or an event id the
 * gateway did not issue, a protocol version that is none) takes one all the same, then answers with
 * the id a small body holds, as a 401 does (withPeekedId); a 429 in its place when the bucket was
 * empty carries it too.
 */
export async function chargedWithPeekedId(
  ctx: RequestContext,
  err: unknown,
  rateLimit: RateLimitStep,
  budget: BufferBudget,
): Promise<unknown> {
  let refusal: unknown = err;
  try {
    await rateLimit.chargeRefused(ctx);
  } catch (limited) {
    refusal = limited;
  }
  return withPeekedId(ctx, refusal, budget);
}

function decisionFor(code: string): RequestContext['decision'] {
  if (code === 'ERR_CLIENT_ABORTED') return 'aborted';
  if (code === 'ERR_OVERLOADED') return 'rate_limited';
  // A stream whose key or token expired before its upstream answered: refused as a request now is.
  if (code.startsWith('ERR_AUTH_') || code === 'ERR_STREAM_EXPIRED') return 'unauthenticated';
  if (code === 'ERR_RATE_LIMITED' || code === 'ERR_TOO_MANY_STREAMS' || code === 'ERR_TOO_MANY_IN_FLIGHT')
    return 'rate_limited';
  if (code.startsWith('ERR_UPSTREAM_')) return 'upstream_error';
  if (code.endsWith('_DENIED') || code.endsWith('_UNPINNED') || code === 'ERR_SESSION_NOT_FOUND')
    return 'deny';
  if (code === 'ERR_RATE_LIMIT_STORE') return 'rate_limited';
  if (code === 'ERR_SHUTTING_DOWN' || code === 'ERR_CONFIG_RELOADED' || code === 'ERR_AUDIT_UNAVAILABLE')
    return 'deny';
  return 'invalid';
}

/** The one place an error becomes a response: status, headers and a JSON-RPC error body. */
import type { RequestContext } from './context.ts';
import { GatewayError, isGatewayError } from '../jsonrpc/errors.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import { errorBody } from '../jsonrpc/message.ts';

export function toGatewayError(err: unknown): GatewayError {
  return isGatewayError(err) ? err : new GatewayError('ERR_INTERNAL', { cause: err });
}

/** The id to answer with: the thrower's, else the first request's in the body, else null. */
function responseId(ctx: RequestContext, err: GatewayError): JsonRpcId | null {
  if (err.rpcId !== undefined) return err.rpcId;
  const first = ctx.messages?.[0];
  if (first && 'id' in first && first.id !== undefined) return first.id;
  return null;
}

export function sendError(
  ctx: RequestContext,
  err: GatewayError,
  extraHeaders?: Record<string, string>,
): void {
  const res = ctx.res;
  ctx.reason ??= err.code;
  if (res.headersSent || res.destroyed) {
    // Too late for an error body: cut the stream so the client sees it fail, never a silent end.
    // The status in the audit line stays the one the client received.
    res.destroy();
    return;
  }
  ctx.status = err.status;
  const body =
    ctx.batch && ctx.messages
      ? batchErrorBody(ctx, err)
      : errorBody(responseId(ctx, err), err.rpcCode, err.message);
  res.statusCode = err.status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  if (err.headers) for (const name in err.headers) res.setHeader(name, err.headers[name] as string);
  if (extraHeaders) for (const name in extraHeaders) res.setHeader(name, extraHeaders[name] as string);
  ctx.bytesOut += Buffer.byteLength(body);
  res.end(body);
}

/** A refused batch gets one error per request, so the client can match every id. */
function batchErrorBody(ctx: RequestContext, err: GatewayError): string {
  const parts: string[] = [];
  for (const m of ctx.messages ?? []) {
    if ('method' in m && 'id' in m && m.id !== undefined)
      parts.push(errorBody(m.id, err.rpcCode, err.message));
  }
  return parts.length === 0 ? errorBody(null, err.rpcCode, err.message) : `[${parts.join(',')}]`;
}

/** A JSON body sent by the gateway itself (a denied call answered like the upstream would). */
export function sendJson(ctx: RequestContext, status: number, body: string): void {
  const res = ctx.res;
  ctx.status = status;
  res.statusCode = status;
  if (body === '') {
    res.end();
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', Buffer.byteLength(body));
  ctx.bytesOut += Buffer.byteLength(body);
  res.end(body);
}

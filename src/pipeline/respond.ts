/** The one place an error becomes a response: status, headers and a JSON-RPC error body. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from './context.ts';
import { lingerOnClose } from './linger.ts';
import { GatewayError, isGatewayError } from '../jsonrpc/errors.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import { errorBody, refusalId } from '../jsonrpc/message.ts';

export function toGatewayError(err: unknown): GatewayError {
  return isGatewayError(err) ? err : new GatewayError('ERR_INTERNAL', { cause: err });
}

/**
 * The id to answer with: the thrower's, else the first message's in the body when it is a request
 * (a response's id is the upstream's: jsonrpc/parse.ts peekId), else null.
 */
function responseId(ctx: RequestContext, err: GatewayError): JsonRpcId | null {
  return err.rpcId !== undefined ? err.rpcId : refusalId(ctx.messages?.[0]);
}

/**
 * The gateway's own headers on an answer it writes itself: X-Request-Id. (A relayed answer gets it
 * in the head the relay writes; CORS headers are set when the request comes in.)
 */
export function setOwnHeaders(ctx: RequestContext): void {
  ctx.res.setHeader('x-request-id', ctx.requestId);
}

export function sendError(ctx: RequestContext, err: GatewayError): void {
  const res = ctx.res;
  ctx.reason ??= err.code;
  if (res.headersSent || res.destroyed) {
    // Too late for an error body: cut the stream so the client sees it fail, never a silent end.
    // The status in the audit line stays the one the client received.
    res.destroy();
    return;
  }
  setOwnHeaders(ctx);
  ctx.status = err.status;
  const body = errorAnswer(ctx, err) ?? errorBody(null, err.rpcCode, err.message);
  ctx.bytesOut += writeJson(res, err.status, body, NO_STORE, err.headers);
}

/**
 * The JSON-RPC error body answering the request's messages (one error per request of a batch), or
 * undefined when it names no request (the client cannot match it to one).
 */
export function errorAnswer(ctx: RequestContext, err: GatewayError): string | undefined {
  if (ctx.batch && ctx.messages) {
    const body = batchErrorBody(ctx, err);
    return body.startsWith('[') ? body : undefined;
  }
  const id = responseId(ctx, err);
  return id === null ? undefined : errorBody(id, err.rpcCode, err.message);
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

/**
 * A JSON body sent by the gateway itself (a denied call answered like the upstream would);
 * `headers`: more of the gateway's own (a refusal's Retry-After on the 202 that stands for it).
 */
export function sendJson(ctx: RequestContext, status: number, body: string, headers?: Headers): void {
  setOwnHeaders(ctx);
  ctx.status = status;
  if (body === '') {
    if (headers) for (const name in headers) ctx.res.setHeader(name, headers[name] as string);
    ctx.res.statusCode = status;
    ctx.res.end();
    return;
  }
  ctx.bytesOut += writeJson(ctx.res, status, body, headers);
}

type Headers = Readonly<Record<string, string>>;

export const NO_STORE: Headers = Object.freeze({ 'cache-control': 'no-store' });

/**
 * Writes a whole JSON response (the pipeline's refusals and the reserved routes' errors go through
 * here): status, Content-Type, Content-Length, then the given headers in order. Returns the body's
 * byte length. An answer sent before the request's body was read whole closes the connection
 * (closeIfBodyUnread; the router does the same for the routes that never read a body).
 */
export function writeJson(
  res: ServerResponse,
  status: number,
  body: string,
  headers?: Headers,
  more?: Headers,
): number {
  const length = Buffer.byteLength(body);
  res.statusCode = status;
  closeIfBodyUnread(res);
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', length);
  if (headers) for (const name in headers) res.setHeader(name, headers[name] as string);
  if (more) for (const name in more) res.setHeader(name, more[name] as string);
  res.end(body);
  return length;
}

/**
 * Whether part of the request's body may still be unread. To keep such a connection alive, Node
 * reads the rest of the body and throws it away, however long it is (a chunked body need never
 * end): a refused client would make the gateway read gigabytes. `Connection: close` instead (Node
 * writes it for `shouldKeepAlive = false`) ends the socket once the answer is sent. While the
 * request handler runs synchronously Node has not yet marked even a bodiless request `complete`,
 * so the headers decide when it is not: no Content-Length (or `0`) and no Transfer-Encoding is no
 * body, and its connection stays alive.
 */
/** Closes the connection after the answer (lingering) when part of the request's body may be unread. */
export function closeIfBodyUnread(res: ServerResponse): void {
  if (!bodyUnread(res.req)) return;
  res.shouldKeepAlive = false;
  // Without reading the rest, and without a reset that could drop the answer (linger.ts).
  if (res.socket !== null) lingerOnClose(res.socket);
}

function bodyUnread(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Requests Node's HTTP parser refuses before the gateway sees them (headers over `maxHeaderSize`:
 * 431; a malformed request line or header: 400; headers not in within `headersTimeout`: 408). Node
 * would answer them itself, and no audit line would record the attempt (a 20 KiB `Authorization`,
 * a smuggling attempt). The listener's `clientError` answers them the same way and hands a record
 * of the refusal to the observer: decision `invalid`, `ERR_INVALID_REQUEST`, the status and the
 * client's address; nothing of the refused bytes (they may hold a key) is kept.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createContext } from '../pipeline/context.ts';
import type { Clock, Observer } from '../pipeline/ports.ts';
import { randomId, requestIdFor } from '../pipeline/request-id.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import { plainError } from './routes.ts';
import type { Route } from './routes.ts';

/** Node's field for the response a socket is carrying (set while the handler has a request). */
type Carrier = Socket & { _httpMessage?: { req?: { complete?: boolean } } | null };

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

export function auditClientErrors(server: Server, observer: Observer, clock: Clock): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A reset connection carries nothing. A request the handler has and is still reading (a body
    // cut short, a request timing out) is answered and recorded there. A response in flight for a
    // request read whole means the error is a request pipelined behind it, which the handler never
    // had: it is recorded here, and the connection closed without an answer written into that
    // response.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
      socket.destroy();
      return;
    }
    const inFlight = (socket as Carrier)._httpMessage;
    if (inFlight != null && inFlight.req?.complete !== true) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    // No response in flight on the socket: the answer may go out, on a kept-alive connection too.
    if (inFlight == null && socket.writable)
      socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
    // A connection that never sent a byte (a preconnect, a probe, a port scan timing out) made no
    // request: it is answered, not recorded.
    if (socket.bytesRead === 0) return;
    // The request as far as anything is known of it: who sent it, nothing it held.
    const req = { method: undefined, url: undefined, headers: {}, socket } as unknown as IncomingMessage;
    recordInvalid(observer, clock, randomId(), req, status);
  });
}

/**
 * Hands the observer the audit record of a request refused as `invalid` (ERR_INVALID_REQUEST)
 * before the pipeline had it: `req` gives the method, the client's address and the protocol
 * revision header, nothing else of it is read.
 */
export function recordInvalid(
  observer: Observer,
  clock: Clock,
  requestId: string,
  req: IncomingMessage,
  status: number,
): void {
  const ctx = createContext(requestId, req, {} as ServerResponse, clock.now(), clock.mono());
  ctx.decision = 'invalid';
  ctx.reason = 'ERR_INVALID_REQUEST';
  ctx.status = status;
  ctx.finished = true;
  observer.finish(ctx);
}

/**
 * The route for a request whose target is not a path: the absolute-form (`POST http://host/mcp`, as
 * a client sends to a forward proxy) or the asterisk-form (`OPTIONS *`). The gateway serves paths
 * only; judging an absolute target would mean taking the authority in it instead of Host (RFC 9112
 * section 3.2.2), a second spelling of the name the Host rule reads. It is refused (400, -32600),
 * its body never read, and recorded like any request the gateway refuses as invalid, since it may
 * have been meant for the MCP endpoint.
 */
export function refuseNotAPath(observer: Observer, clock: Clock): Route {
  return (req, res) => {
    const requestId = requestIdFor(req);
    res.setHeader('x-request-id', requestId);
    plainError(
      res,
      new GatewayError('ERR_INVALID_REQUEST', {
        message: 'invalid request: the request target must be a path (origin-form), not a URL',
      }),
    );
    recordInvalid(observer, clock, requestId, req, 400);
  };
}

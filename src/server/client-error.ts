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
import type { Observer } from '../pipeline/ports.ts';
import { randomId } from '../pipeline/request-id.ts';

/** Node's field for the response a socket is carrying (set while the handler has a request). */
type Carrier = Socket & { _httpMessage?: { req?: { complete?: boolean } } | null };

interface Clock {
  now(): number;
  mono(): number;
}

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
    const ctx = createContext(randomId(), req, {} as ServerResponse, clock.now(), clock.mono());
    ctx.decision = 'invalid';
    ctx.reason = 'ERR_INVALID_REQUEST';
    ctx.status = status;
    ctx.finished = true;
    observer.finish(ctx);
  });
}

/**
 * CONNECT (`CONNECT host:port`, the authority-form, or `CONNECT /mcp`): the gateway tunnels nothing.
 * Node hands such a request to the server's 'connect' listeners with its socket (with none, it
 * destroys the socket: no answer, no audit line, the answers due before it cut). From then on Node
 * no longer reads the socket, watches it for the client leaving, or closes the requests still
 * queued on it when it closes; it does still write the answers due on it in turn, each when the one
 * before has finished. So the gateway takes all of that over here:
 *
 * - the socket is read and what comes is dropped; the client's end or an error destroys it, as
 *   Node's own handling does (`httpAllowHalfOpen` is off), which cuts what is still due;
 * - the 400 is written once the last answer due before it has gone out, so answers keep their
 *   order; the router tells which answers Node queued behind another on a connection (`trackQueued`:
 *   pipelining, rare, so nothing is kept for a connection that does not pipeline);
 * - when the socket closes, the requests still queued on it are destroyed with their answers, as
 *   Node does on a connection it still owns, so each gets its line (499, aborted);
 * - the CONNECT's own line is written when its answer has been (499, aborted, if it never was), and
 *   the socket is destroyed LINGER_MS after the answer whatever the client does.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { errorBody } from '../jsonrpc/message.ts';
import { RPC } from '../jsonrpc/errors.ts';
import { LINGER_MS } from '../pipeline/linger.ts';
import type { Clock, Observer } from '../pipeline/ports.ts';
import { requestIdFor } from '../pipeline/request-id.ts';
import { recordInvalid } from './client-error.ts';

const QUEUED = Symbol('mcpgate.queued');

/** A socket as Node keeps it: the answer being written on it, and the answers queued behind it. */
type Connection = Socket & {
  _httpMessage?: ServerResponse | null;
  [QUEUED]?: Set<ServerResponse>;
};

/**
 * Remembers `res` until it closes when Node queued it behind another answer on its connection
 * (it has no socket yet): called by the router for every request, it costs one property read
 * unless the client pipelines.
 */
export function trackQueued(req: IncomingMessage, res: ServerResponse): void {
  if (res.socket !== null) return;
  const socket = req.socket as Connection;
  (socket[QUEUED] ??= new Set()).add(res);
  res.once('close', untrack);
}

/**
 * Whether `res`, queued behind another answer on its connection, can never be sent: an answer due
 * before it closes the connection (`Connection: close`, as one sent before its request's body was
 * read does: pipeline/respond.ts closeIfBodyUnread), or the connection is closing already. Node
 * parses every request in what it has read, also those behind a body the gateway left unread, and
 * hands each to the router at once; such a request must not be processed (RFC 9112 section 9.6: a
 * server that sends `close` processes no further request on that connection), or it reaches the
 * upstream while its client, told the connection closes, never reads its answer (and may send it
 * again).
 */
export function closedBeforeTurn(res: ServerResponse): boolean {
  const socket = res.req.socket as Connection;
  // (A request parsed once the answer before it has gone out gets the socket that answer ended.)
  if (socket.destroyed || socket.writableEnded) return true;
  if (res.socket !== null) return false;
  const current = socket._httpMessage;
  if (current != null && current !== res && !current.shouldKeepAlive) return true;
  const queued = socket[QUEUED];
  if (queued !== undefined)
    for (const ahead of queued) {
      if (ahead === res) break;
      if (!ahead.shouldKeepAlive) return true;
    }
  return false;
}

function untrack(this: ServerResponse): void {
  (this.req.socket as Connection)[QUEUED]?.delete(this);
}

/**
 * Answers every CONNECT on `server` with 400. `observer`: where its line goes (absent on a
 * listener that writes no audit lines, such as `metrics.listen`).
 */
export function refuseConnect(server: Server, clock: Clock, observer?: Observer): void {
  server.on('connect', (req: IncomingMessage, handed: Socket) => {
    const socket = handed as Connection;
    const startedAt = clock.now();
    const startedMono = clock.mono();
    const requestId = requestIdFor(req);
    const body = errorBody(
      null,
      RPC.INVALID_REQUEST,
      'invalid request: CONNECT is not served; the request target must be a path',
    );
    const bodyBytes = Buffer.byteLength(body);
    const head =
      `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${bodyBytes}` +
      `\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n`;
    let recorded = false;
    const record = (sent: boolean) => {
      if (recorded || observer === undefined) return;
      recorded = true;
      recordInvalid(observer, clock, requestId, req, 400, {
        startedAt,
        startedMono,
        bytesOut: sent ? bodyBytes : 0,
        sent,
      });
    };
    socket.on('data', drop);
    socket.on('end', destroySocket);
    socket.on('error', destroySocket);
    socket.once('close', () => {
      closeQueued(socket);
      record(false);
    });
    socket.resume();
    const answer = () => {
      if (socket.destroyed || !socket.writable) return;
      socket.end(head + body, () => record(true));
      setTimeout(destroySocket.bind(socket), LINGER_MS).unref();
    };
    // Each time an answer due before it closes (in its turn, or cut early while still queued),
    // look again: the 400 goes out only once nothing is due before it.
    const answerWhenDue = () => {
      const due = lastDue(socket);
      if (due === undefined) answer();
      else due.once('close', answerWhenDue);
    };
    answerWhenDue();
  });
}

/**
 * The answer due last on the connection, when one has not gone out (before a CONNECT, or before a
 * request the parser refused: client-error.ts).
 */
export function lastDue(socket: Connection): ServerResponse | undefined {
  let last: ServerResponse | undefined;
  const current = socket._httpMessage;
  if (current != null && !current.writableFinished && !current.destroyed) last = current;
  const queued = socket[QUEUED];
  if (queued !== undefined) for (const res of queued) last = res;
  return last;
}

/**
 * What Node does for the requests queued on a connection it owns when it closes: each request and
 * answer still waiting for its turn is destroyed (Node then emits the answer's 'close' itself). An
 * answer that already has the socket is closed by Node with it.
 */
function closeQueued(socket: Connection): void {
  const queued = socket[QUEUED];
  if (queued === undefined) return;
  for (const res of [...queued]) {
    if (res.socket !== null || res.writableFinished) continue;
    res.req.destroy();
    res.destroy();
  }
}

function drop(): void {}

function destroySocket(this: Socket): void {
  this.destroy();
}

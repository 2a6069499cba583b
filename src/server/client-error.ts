/**
 * Requests Node's HTTP parser refuses before the gateway sees them (headers over `maxHeaderSize`:
 * 431; a malformed request line or header: 400; headers not in within `headersTimeout`: 408). Node
 * would answer them itself, and no audit line would record the attempt (a 20 KiB `Authorization`,
 * a smuggling attempt). The listener's `clientError` answers them the same way and hands a record
 * of the refusal to the observer: decision `invalid`, `ERR_INVALID_REQUEST`, the status and the
 * client's address; nothing of the refused bytes (they may hold a key) is kept. The router's own
 * refusals (createRefusal) and CONNECT (connect.ts) are recorded the same way (recordInvalid).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { errorBody } from '../jsonrpc/message.ts';
import { RPC } from '../jsonrpc/errors.ts';
import { writeJson } from '../pipeline/respond.ts';
import type { Socket } from 'node:net';
import { createContext } from '../pipeline/context.ts';
import type { Clock, Observer } from '../pipeline/ports.ts';
import { randomId, requestIdFor } from '../pipeline/request-id.ts';
import { closeLingering } from '../pipeline/linger.ts';
import { bodyMalformed } from '../pipeline/read-body.ts';
import { lastDue } from './connect.ts';

/**
 * Node's fields for the response a socket is carrying (set while the handler has a request) and for
 * the request its parser is reading (the last one whose head it read).
 */
type Carrier = Socket & {
  _httpMessage?: { req?: IncomingMessage } | null;
  parser?: { incoming?: IncomingMessage | null } | null;
  [FAILED]?: true;
};

/**
 * Set on a socket whose parser failed where the handler still owes answers: the failure was dealt
 * with once, and the parser's failures on later reads of the socket are ignored.
 */
const FAILED = Symbol('mcpgate.parserFailed');

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

/** What the JSON-RPC error of each answer says. */
const WHY: Readonly<Record<number, string>> = {
  400: 'malformed HTTP request',
  408: 'request headers not received in time',
  431: 'request headers too large',
};

/**
 * A whole answer written on the socket itself (no response object: Node's parser failed, or the
 * request never reached the handler): the status, a JSON-RPC error body, the request id of its audit
 * line (as every other answer carries, CONNECT's included: without it a client's report of a refusal
 * could not be matched to its line), and the connection closed.
 */
function rawAnswer(status: number, body: string, requestId: string): string {
  return (
    `HTTP/1.1 ${status} ${REASONS[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
    `Cache-Control: no-store\r\nX-Request-Id: ${requestId}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** The request as far as anything is known of it: who sent it (its socket), nothing it held. */
function unknownRequest(socket: Socket): IncomingMessage {
  return { method: undefined, url: undefined, headers: {}, socket } as unknown as IncomingMessage;
}

/**
 * Whether Node's parser failed on the bytes of a body (an HPE_ code), not at the connection's end
 * (HPE_INVALID_EOF_STATE: the client left mid-body, which the handler sees as an abort).
 */
function malformedBody(code: string | undefined): boolean {
  return code !== undefined && code.startsWith('HPE_') && code !== 'HPE_INVALID_EOF_STATE';
}

export function auditClientErrors(server: Server, observer: Observer, clock: Clock): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // A reset connection carries nothing. A request the handler has and is still reading (a body
    // cut short, a request timing out, a malformed body) is answered and recorded there. A response
    // in flight for a request read whole means the error is a request pipelined behind it, which the
    // handler never had: it is answered and recorded here, after the answers owed before it.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
      socket.destroy();
      return;
    }
    const inFlight = (socket as Carrier)._httpMessage;
    // A failure dealt with already (below): the parser, failed, fails again on each later read of
    // the socket, which is still read (so a client that leaves is seen and its requests aborted).
    // The connection closes after the answers owed on it.
    if ((socket as Carrier)[FAILED] === true) return;
    // Bytes after a request that closes the connection (`Connection: close`, HTTP/1.0 without
    // keep-alive): whatever follows is no request to process (RFC 9112 section 9.6), but the answers
    // to the requests read whole before it are still owed. Destroyed here, they were lost (a call the
    // upstream ran, an answer the client never got, a line saying the client left). So the rest is
    // recorded once as never processed and dropped, and Node closes the connection after the last
    // answer.
    if (err.code === 'HPE_CLOSED_CONNECTION' && inFlight != null) {
      (socket as Carrier)[FAILED] = true;
      recordInvalid(observer, clock, randomId(), unknownRequest(socket), 400, { sent: false });
      return;
    }
    // The parser failed in the body of a request the handler has (a malformed chunk, a bad transfer
    // coding): a POST's body read gets the failure (read-body.ts bodyMalformed) and the client its
    // 400; any other request is answered without its body (a GET or DELETE that has one gets 400,
    // envelope.ts checkNoBody), with the connection closed after the answer, as any answer with a
    // body unread is. Destroyed here, the client got no answer at all, and the line said it had
    // left. The request is the one the parser is reading, which may be pipelined behind answers
    // still owed (the response on the socket is then an earlier request's): those go out first.
    const parsing = (socket as Carrier).parser?.incoming;
    if (parsing != null && !parsing.complete && malformedBody(err.code)) {
      (socket as Carrier)[FAILED] = true;
      bodyMalformed(parsing);
      return;
    }
    // The request the parser is reading is the handler's, its body cut short (the client closed,
    // the request timed out): the handler records it (499, aborted). It may be pipelined behind an
    // answer still going out, which is then the response on the socket: taken for bytes behind
    // that answer, it got a second line, a refusal of a request that has one of its own.
    const inFlightReq = inFlight?.req;
    if ((parsing != null && !parsing.complete) || (inFlight != null && inFlightReq?.complete !== true)) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const req = unknownRequest(socket);
    // The answer says why in a JSON-RPC error, as every other refusal does (id null: nothing of
    // the request was read).
    const body = errorBody(null, RPC.INVALID_REQUEST, `invalid request: ${WHY[status]}`);
    const requestId = randomId();
    const answer = rawAnswer(status, body, requestId);
    // The line's bytes_out is the answer's body, as on every other line (it said 0 for a sent answer).
    const bytesOut = Buffer.byteLength(body);
    // Behind answers still owed (the request in flight, and any queued behind it, read whole): the
    // refused bytes are a request pipelined behind them, and those answers go out first, then this
    // one, and the connection closes. Destroyed here, a call the upstream was running lost its
    // answer (its line said the client left), the refused request got none, and its line said 400.
    if (inFlight != null) {
      (socket as Carrier)[FAILED] = true;
      const startedAt = clock.now();
      const startedMono = clock.mono();
      const record = (sent: boolean) =>
        recordInvalid(observer, clock, requestId, req, status, { startedAt, startedMono, bytesOut, sent });
      const answerWhenDue = (): void => {
        const due = lastDue(socket);
        if (due !== undefined) return void due.once('close', answerWhenDue);
        if (socket.destroyed || !socket.writable) return record(false);
        socket.write(answer);
        closeLingering(socket);
        record(true);
      };
      answerWhenDue();
      return;
    }
    // No response in flight on the socket: the answer may go out, on a kept-alive connection too.
    // The socket is then read no more: Node hands every later read of it to the parser that has
    // failed, which fails again, so a body arriving in several reads behind a refused head made a
    // second refusal, a second audit line for one request, and a destroy that reset the connection
    // before the client read the answer. Closed as any refusal with its body unread is (linger.ts).
    // Answered here, once: the shutdown's sweep of requests cut mid-head (recordCutHeads) passes it.
    (socket as Carrier)[FAILED] = true;
    const sent = socket.writable;
    if (sent) {
      socket.write(answer);
      closeLingering(socket);
    } else socket.destroy();
    // A connection that never sent a byte (a preconnect, a probe, a port scan timing out) made no
    // request: it is answered, not recorded.
    if (socket.bytesRead === 0) return;
    recordInvalid(observer, clock, requestId, req, status, { bytesOut, sent });
  });
}

/**
 * Hands the observer the audit record of a request refused as `invalid` (ERR_INVALID_REQUEST)
 * before the pipeline had it: `req` gives the method, the client's address and the protocol
 * revision header, nothing else of it is read. `bytesOut`: the answer's size when it went out; a
 * refusal whose answer never went out is recorded as 499, aborted.
 */
export function recordInvalid(
  observer: Observer,
  clock: Clock,
  requestId: string,
  req: IncomingMessage,
  status: number,
  { startedAt = clock.now(), startedMono = clock.mono(), bytesOut = 0, sent = true } = {},
): void {
  const ctx = createContext(requestId, req, {} as ServerResponse, startedAt, startedMono);
  ctx.decision = 'invalid';
  ctx.reason = 'ERR_INVALID_REQUEST';
  ctx.status = sent ? status : 499;
  ctx.aborted = !sent;
  ctx.bytesOut = sent ? bytesOut : 0;
  ctx.finished = true;
  observer.finish(ctx);
}

/** Refuses a request the router will not route (400, -32600, `message`), with its audit line. */
export type Refuse = (req: IncomingMessage, res: ServerResponse, message: string) => void;

/**
 * The router's refusal of a request that cannot be judged: a target that is not a path (the
 * absolute-form `POST http://host/mcp`, as a client sends to a forward proxy, or the asterisk-form
 * `OPTIONS *`), or an HTTP/1.1 request without Host (RFC 9112 section 3.2: 400). The gateway serves
 * paths only; judging an absolute target would mean taking the authority in it instead of Host
 * (RFC 9112 section 3.2.2), a second spelling of the name the Host rule reads. The body is never
 * read. The line is written when the answer has gone out (or could not), in its turn behind a
 * response still going out on the same connection.
 */
export function createRefusal(observer: Observer, clock: Clock): Refuse {
  return (req, res, message) => {
    const startedAt = clock.now();
    const startedMono = clock.mono();
    const requestId = requestIdFor(req);
    res.setHeader('x-request-id', requestId);
    const body = errorBody(null, RPC.INVALID_REQUEST, `invalid request: ${message}`);
    const bytesOut = writeJson(res, 400, body);
    res.once('close', () =>
      recordInvalid(observer, clock, requestId, req, 400, {
        startedAt,
        startedMono,
        bytesOut,
        sent: res.writableFinished,
      }),
    );
  };
}

/** Node's list of a server's connections: `active()`, the parsers inside a request's bytes. */
type Connections = { active(): { socket?: Socket | null; incoming?: IncomingMessage | null }[] };

function connectionsOf(server: Server): Connections | undefined {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
  const list = key === undefined ? undefined : (server as unknown as Record<symbol, unknown>)[key];
  return typeof (list as Connections | undefined)?.active === 'function' ? (list as Connections) : undefined;
}

/**
 * At the end of a shutdown, before every connection is closed: a request whose head was still
 * coming in (a slow client, one writing its head in pieces, one pipelined behind a response) had no
 * handler yet, so nothing recorded it, and closing the connection cut it without an answer or a
 * line. Each such connection (Node's parser inside a message, no request of it handed over; one that
 * never sent a byte made no request) gets its 503 (-32003, id null: nothing of it was read) where no
 * response is going out on it, and one line: `deny`, `ERR_SHUTTING_DOWN`, as a request received
 * while draining, with 499 and `aborted` if the answer could not go out.
 *
 * Resolves when every such line is written (each once its connection has closed, which the caller's
 * closeAllConnections does): the audit log is closed next, and a line handed over after that is
 * dropped, which is what became of every one of them outside the tests.
 */
export function recordCutHeads(server: Server, observer: Observer, clock: Clock): Promise<void> {
  const recorded: Promise<void>[] = [];
  for (const parser of connectionsOf(server)?.active() ?? []) {
    const socket = parser.socket as Carrier | null | undefined;
    if (socket == null || socket.destroyed || socket.bytesRead === 0 || socket[FAILED] === true) continue;
    // A request whose head was read is the handler's (it records it), its body still coming or not.
    if (parser.incoming != null && parser.incoming.complete !== true) continue;
    socket[FAILED] = true;
    const startedAt = clock.now();
    const startedMono = clock.mono();
    let bytesOut = 0;
    const requestId = randomId();
    if (socket._httpMessage == null && socket.writable) {
      const body = errorBody(null, RPC.SHUTTING_DOWN, 'gateway is shutting down');
      socket.write(rawAnswer(503, body, requestId), (err) => {
        if (err == null) bytesOut = Buffer.byteLength(body);
      });
      socket.end();
    }
    let written!: () => void;
    recorded.push(new Promise((r) => (written = r)));
    socket.once('close', () => {
      const ctx = createContext(
        requestId,
        unknownRequest(socket),
        {} as ServerResponse,
        startedAt,
        startedMono,
      );
      ctx.decision = 'deny';
      ctx.reason = 'ERR_SHUTTING_DOWN';
      ctx.status = bytesOut > 0 ? 503 : 499;
      ctx.aborted = bytesOut === 0;
      ctx.bytesOut = bytesOut;
      ctx.finished = true;
      observer.finish(ctx);
      written();
    });
  }
  return Promise.all(recorded).then(() => undefined);
}

/**
 * Reads a request body up to a cap (policy must read it; nothing else is buffered). Past the cap
 * the client gets 413 at once and the connection is closed after the answer (respond.ts), so a
 * huge upload is never read. The body is copied into one buffer (sized from Content-Length when
 * its first bytes arrive); its bytes are reserved against the process-wide budget as they arrive,
 * until the response has finished; when the budget is spent the request gets 503 (ERR_OVERLOADED)
 * and is not read further.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../jsonrpc/errors.ts';
import { BodyBuffer } from '../proxy/body-buffer.ts';
import type { Budget } from '../proxy/body-buffer.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';

/** `budget`: what the body reserves against (a key's share, key-shares.ts); the process-wide one if none. */
export type ReadBody = (req: IncomingMessage, res: ServerResponse, budget?: Budget) => Promise<Buffer>;

/**
 * `sweep`, when given, is told the size of every chunk read (server/young-sweep.ts: their buffers
 * are freed by a scavenge, not a mark-compact).
 */
export function createReadBody(
  maxBytes: number,
  budget: BufferBudget,
  sweep?: { add(bytes: number): void },
): ReadBody {
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0)
    throw new TypeError('maxBytes must be a positive integer');
  return function readBody(req, res, own) {
    // A client that left while the request was authenticated or paid for: nothing will come.
    if (req.destroyed || res.destroyed) return Promise.reject(new GatewayError('ERR_CLIENT_ABORTED'));
    // Node's parser failed in the body meanwhile (bodyMalformed): nothing more of it will come.
    if ((req as Carrier<IncomingMessage>)[MALFORMED] === true) return Promise.reject(malformed());
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBytes) {
      return Promise.reject(tooLarge());
    }
    // A client waiting on `Expect: 100-continue` is invited only now: paid for, its envelope and
    // its announced size accepted.
    if (expectsContinue(req)) inviteBody(res);
    const read = new BodyRead(
      new BodyBuffer(own ?? budget, maxBytes, declared === undefined ? undefined : Number(declared)),
      sweep,
    );
    // The bytes (and what is parsed from them) live until the response has finished.
    if (res.destroyed) read.held.release();
    else {
      (res as Carrier<ServerResponse>)[READ] = read;
      res.on('close', releaseOnClose);
    }
    (req as Carrier<IncomingMessage>)[READ] = read;
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
    return read.promise;
  };
}

/**
 * One body being read. The request and the response carry it, so the listeners are shared
 * functions rather than closures per request; they stay attached once it settles and do nothing.
 */
class BodyRead {
  readonly held: BodyBuffer;
  readonly promise: Promise<Buffer>;
  private readonly sweep: { add(bytes: number): void } | undefined;
  private resolve!: (bytes: Buffer) => void;
  private reject!: (err: GatewayError) => void;
  private settled = false;
  /** Bytes read, then given back by a refusal or an abort (for the audit line). */
  private dropped = 0;
  /** Pieces ('data' events) the body came in so far. */
  private pieces = 0;

  constructor(held: BodyBuffer, sweep: { add(bytes: number): void } | undefined) {
    this.held = held;
    this.sweep = sweep;
    this.promise = new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  data(req: IncomingMessage, chunk: Buffer): void {
    this.sweep?.add(chunk.length);
    if (this.settled) return;
    if (++this.pieces > FREE_PIECES && (this.pieces - FREE_PIECES) * MIN_PIECE_BYTES > this.held.length) {
      this.refuse(req, chunk, scattered());
      return;
    }
    const refusal = this.held.push(chunk);
    if (refusal === undefined) return;
    this.refuse(req, chunk, refusal === 'too-large' ? tooLarge() : overloaded());
  }

  /** Reads no more of the body and gives back what it held. */
  private refuse(req: IncomingMessage, chunk: Buffer, err: GatewayError): void {
    this.settled = true;
    req.pause();
    this.dropped = this.held.length + chunk.length;
    this.held.release();
    this.reject(err);
  }

  end(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(this.held.bytes());
  }

  /** Node's parser failed in the body: no more of it comes, and the client is told why (400). */
  malformed(): void {
    if (this.settled) return;
    this.settled = true;
    this.dropped = this.held.length;
    this.held.release();
    this.reject(malformed());
  }

  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.dropped = this.held.length;
    this.held.release();
    this.reject(new GatewayError('ERR_CLIENT_ABORTED', { cause: err }));
  }

  /** Body bytes read so far, also after a refusal gave them back. */
  get bytesRead(): number {
    return this.held.length + this.dropped;
  }
}

const READ = Symbol('mcpgate.body');
/** Set on a request whose body Node's parser could not read (bodyMalformed). */
const MALFORMED = Symbol('mcpgate.bodyMalformed');
type Carrier<T> = T & { [READ]?: BodyRead; [MALFORMED]?: true };

/**
 * Node's parser failed in the body of `req` (a malformed chunk or chunk size, a bad transfer
 * coding): it says so only to the server's clientError listener (client-error.ts), and hands the
 * request nothing more, neither data nor an end. The body read, under way or still to come, is
 * refused as invalid (400, -32600), where a destroyed socket left the client without an answer and
 * its line saying the client had left.
 */
export function bodyMalformed(req: IncomingMessage): void {
  (req as Carrier<IncomingMessage>)[MALFORMED] = true;
  (req as Carrier<IncomingMessage>)[READ]?.malformed();
}

/** How many body bytes readBody read for this request (0 when it read none), refused or not. */
export function bodyBytesRead(req: IncomingMessage): number {
  return (req as Carrier<IncomingMessage>)[READ]?.bytesRead ?? 0;
}

function onData(this: IncomingMessage, chunk: Buffer): void {
  (this as Carrier<IncomingMessage>)[READ]?.data(this, chunk);
}

function onEnd(this: IncomingMessage): void {
  (this as Carrier<IncomingMessage>)[READ]?.end();
}

function onError(this: IncomingMessage, err: Error): void {
  (this as Carrier<IncomingMessage>)[READ]?.fail(err);
}

function onClose(this: IncomingMessage): void {
  if (!this.complete) (this as Carrier<IncomingMessage>)[READ]?.fail(new Error('client closed the request'));
}

function releaseOnClose(this: ServerResponse): void {
  (this as Carrier<ServerResponse>)[READ]?.held.release();
}

/**
 * A body may come in FREE_PIECES pieces, and one more per MIN_PIECE_BYTES held past those. Node's
 * parser hands over each chunk of a chunked body (and each socket read) as a Buffer and a 'data'
 * event, about 2 µs each: a body of 1 MB in one-byte chunks (6 MB on the wire) was a million of
 * them, the event loop held for seconds, in stretches of a second, by one request of one token. A
 * body that comes in smaller pieces is refused (400) and the rest of it never read; clients write
 * bodies whole or in pieces of kilobytes, and TCP delivers them in segments of about 1,400 bytes.
 */
const FREE_PIECES = 1024;
const MIN_PIECE_BYTES = 64;

function malformed(): GatewayError {
  return new GatewayError('ERR_INVALID_REQUEST', { message: 'invalid request: malformed HTTP request body' });
}

function scattered(): GatewayError {
  return new GatewayError('ERR_INVALID_REQUEST', {
    message: `invalid request: the body came in pieces of fewer than ${MIN_PIECE_BYTES} bytes`,
  });
}

function tooLarge(): GatewayError {
  return new GatewayError('ERR_BODY_TOO_LARGE');
}

function overloaded(): GatewayError {
  return new GatewayError('ERR_OVERLOADED', { headers: { 'retry-after': '1' } });
}

/**
 * Sends `100 Continue` in its place on the connection. A response pipelined behind another one still
 * going out has no socket yet: Node queues an interim response written then, and puts the final
 * head in front of the queue when the answer comes (OutgoingMessage._send), so the client read
 * `HTTP/1.1 100 Continue` as the first bytes of the answer's body and the rest of the connection
 * out of step (a line saying 200 for an answer no client could read). So the 100 goes out when the
 * response gets the connection, unless its final head is there already: that answer meets the
 * expectation (RFC 9110 section 10.1.1).
 */
function inviteBody(res: ServerResponse): void {
  if (res.socket != null) return void res.writeContinue();
  const invite = (): void => {
    if (!res.headersSent && !res.destroyed) res.writeContinue();
  };
  res.once('socket', invite);
  // A client may send its body without waiting for the 100 (the pipelining client does): once the
  // body is in whole, no 100 is owed (RFC 9110 section 10.1.1 lets the server omit it). Node closes
  // the connection after an answer whose expected 100 never went out, since the body might still
  // come after it; here it has been read, so the requests pipelined behind are answered too.
  res.req.once('end', () => {
    res.off('socket', invite);
    (res as ServerResponse & { _expect_continue?: boolean })._expect_continue = false;
  });
}

/**
 * Whether the client waits for `100 Continue` before it sends its body (the server's
 * `checkContinue` goes to the route: nothing invites the body before the pipeline does). Only an
 * HTTP/1.1 client does: an HTTP/1.0 request's expectation is ignored (RFC 9110 section 10.1.1, as
 * Node's server does), since an HTTP/1.0 client or proxy would read the 100 as the answer.
 */
export function expectsContinue(req: IncomingMessage): boolean {
  return asksContinue(req) && (req.httpVersionMajor > 1 || req.httpVersionMinor >= 1);
}

function asksContinue(req: IncomingMessage): boolean {
  const expect = req.headers.expect;
  return typeof expect === 'string' && CONTINUE.test(expect);
}

/** What Node's server routes to `checkContinue` (node:_http_server's continueExpression). */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/** Whether the request carries an `Expect` the gateway does not meet (anything but 100-continue). */
export function unsupportedExpectation(req: IncomingMessage): boolean {
  const expect = req.headers.expect;
  return expect !== undefined && !asksContinue(req);
}

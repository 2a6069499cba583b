/**
 * Relays one upstream response to the client, chunk by chunk, with backpressure both ways:
 * a slow client pauses the upstream socket; a client that leaves aborts the upstream request.
 * Only list responses that a rule rewrites are held (a JSON body whole, an SSE stream one event
 * at a time); everything else is written as it arrives. A client that takes nothing for
 * `send_timeout` is cut (send-watch.ts); a large held body goes out as the client takes it
 * (tail-pump.ts).
 */
import type { ServerResponse } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { isEventStream, isJson } from './headers.ts';
import { GatewayError, isGatewayError } from '../jsonrpc/errors.ts';
import { BodyBuffer, BufferBudget } from './body-buffer.ts';
import type { HoldRefusal } from './body-buffer.ts';
import type { KeepaliveStream } from './keepalive.ts';
import type { RelayConfig, RelayHooks, ResponseRewrite, SseRewriterLike } from './relay-api.ts';
import { unreadBody } from './unread-body.ts';
import { mapUpstreamError } from './upstream-error.ts';
import { SendWatch } from './send-watch.ts';
import type { StallOwner } from './send-watch.ts';
import { TAIL_SLICE, TailPump } from './tail-pump.ts';
import type { TailOwner } from './tail-pump.ts';

export type { RelayConfig, RelayHooks, ResponseRewrite } from './relay-api.ts';

const KEEPALIVE = Buffer.from(': keepalive\n\n');
/** For relays built without a budget (tests): only the per-body cap applies. */
const UNBOUNDED = new BufferBudget(Number.MAX_SAFE_INTEGER);

function overloaded(message: string): GatewayError {
  return new GatewayError('ERR_OVERLOADED', { message, status: 502 });
}
const EMPTY = Buffer.alloc(0);

function flushHead(relay: Relay): void {
  relay.flushHead();
}

/**
 * The head as Node's writeHead takes it fastest: a flat `[name, value, ...]` list, on a response
 * with nothing set on it before (no setHeader: Node then merges no header map). A held body's
 * Content-Length is appended here rather than added to the header object (one property fewer to
 * add, and no new shape for the object per response).
 */
function flatHead(headers: Record<string, string | string[]>, length?: number): (string | string[])[] {
  const flat: (string | string[])[] = [];
  for (const name in headers) flat.push(name, headers[name] as string | string[]);
  if (length !== undefined) flat.push('content-length', String(length));
  return flat;
}

/**
 * A Content-Length of 1 to 9 ASCII digits as a number, else -1 (absent, repeated, or larger than a
 * body the gateway would hold).
 */
function usableLength(value: string | string[] | undefined): number {
  if (typeof value !== 'string' || value.length === 0 || value.length > 9) return -1;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * A body refused under an error status (not JSON, a response to no request, no response at all) is
 * one the gateway cannot read: it keeps that status, as an unreadable body of another type does
 * (unreadBody), with the gateway's error for each request. Answered 502, a client lost what the
 * status said: a 404 that its session is gone, which a client must answer with a new one.
 */
function errorStatusKept(err: Error, status: number): Error {
  if (!isGatewayError(err) || err.code !== 'ERR_UPSTREAM_PROTOCOL') return err;
  return new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: err.message, cause: err, status });
}

/** Upper bound for a JSON list body the gateway holds to filter (a page of tools is far smaller). */
const MAX_REWRITE_BYTES = 64 * 1024 * 1024;

export class Relay implements Dispatcher.DispatchHandler, KeepaliveStream, StallOwner, TailOwner {
  private readonly res: ServerResponse;
  private readonly options: RelayConfig;
  /** How the response is rewritten, when a rule must read it. */
  private readonly rewrite: ResponseRewrite | undefined;
  private readonly hooks: RelayHooks;
  private controller: Dispatcher.DispatchController | undefined;
  keepaliveSlot = -1;
  keepaliveTick = 0;
  private sse = false;
  /** Content-Length of a plain response, while its body may still arrive as one chunk. */
  private wholeLength = -1;
  /** That one chunk, written with the end of the response (headers and body in one write). */
  private whole: Buffer | undefined;
  /** True while the last bytes written end an SSE event (a keepalive may be inserted then). */
  private atBoundary = true;
  /** The JSON body is held whole for the rewrite (in `whole` when it came as one chunk, else in `held`). */
  private holding = false;
  /** Content-Length of a held body, when the upstream sent a usable one (else -1). */
  private heldLength = -1;
  private held: BodyBuffer | undefined;
  /** The held body was rewritten into bytes of their own: its buffer may be reused. */
  private reuseHeld = false;
  /** Bytes of the budget reserved for a held body kept as its one chunk. */
  private wholeReserved = 0;
  /** The body sent instead of an unreadable non-2xx one (the upstream's is read and dropped). */
  private replacement: Buffer | undefined;
  private sseRewriter: SseRewriterLike | undefined;
  /** The SSE rewriter is made on the first bytes (an idle stream never needs one). */
  private sseRewrite = false;
  private done = false;
  /** A held (rewritten JSON) response is written only once it is complete and filtered: its head. */
  private heldHeaders: Record<string, string | string[]> | undefined = undefined;
  private heldStatus = 0;
  /** The SSE headers are written but not sent: the first bytes (or the next tick) take them. */
  private headPending = false;
  /** Resumes the upstream once the client drained (made on the first pause only). */
  private onDrain: (() => void) | undefined = undefined;
  /** Cuts the response if the client takes nothing for `sendTimeoutMs` (made when first needed). */
  private watch: SendWatch | undefined = undefined;
  /** A large held body being written as the client takes it. */
  private tail: TailPump | undefined = undefined;

  constructor(
    res: ServerResponse,
    options: RelayConfig,
    rewrite: ResponseRewrite | undefined,
    hooks: RelayHooks,
  ) {
    this.res = res;
    this.options = options;
    this.rewrite = rewrite;
    this.hooks = hooks;
  }

  /** The upstream's answer is an SSE stream (its events are judged as they come). */
  get streaming(): boolean {
    return this.sse;
  }

  /** The client went away: abort the upstream request at once. */
  abort(reason: Error): void {
    this.stopKeepalive();
    this.watch?.clear();
    this.tail?.stop();
    if (this.controller && !this.controller.aborted) this.controller.abort(reason);
  }

  /**
   * The gateway ends the response itself, after its head went out (a reload refused its key, its
   * credential expired, shutdown: `refusal`), and aborts the upstream request. A stream ends as when
   * its upstream ends it, through its rewriter: one that carried no event answers the requests it
   * owes, here with the refusal (it ended bare: a listen got no answer). Ending it clears the timers
   * that would cut a client taking nothing, so the end is watched as the upstream's end is
   * (watchEnd): a client that read nothing kept its stream's slot and its audit line for as long as
   * it kept the connection. A held body being pumped is cut instead: its head said a length this end
   * falls short of, and the client would wait for the rest on a connection Node keeps open.
   */
  end(reason: Error, refusal: GatewayError): void {
    const res = this.res;
    // Ended by its upstream already: its end watch (if any) stays armed.
    if (res.writableEnded || res.destroyed) return;
    // Ended before the abort: the upstream's error it causes finds nothing more to send (onDone).
    if (this.tail !== undefined) {
      this.tail.stop();
      res.destroy();
    } else if (this.replacement !== undefined) {
      // The gateway's own body in place of an unreadable one its upstream had not finished: its head
      // went with its length, and ended bare the client waited on the connection for those bytes.
      this.endWith(this.replacement);
    } else {
      if (this.sseRewrite) this.endStreamOwing(refusal);
      res.end();
    }
    this.abort(reason);
    this.watchEnd();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The client left, or the gateway answered it already (a stream refused by a reload or at its
    // credential's expiry), while its connection was being made: abort() found nothing to abort.
    // A refusal queued behind another answer on the client's connection is ended, not destroyed.
    if (this.res.destroyed) controller.abort(new Error('client closed the request'));
    else if (this.res.writableEnded) controller.abort(new Error('answered by the gateway'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    upstreamHeaders: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return;
    // The raw header buffers are views into the socket's read chunk: kept on the controller, they
    // would hold that chunk for as long as the response lasts (a GET stream's whole life).
    controller.rawHeaders = null;
    this.controller = controller;
    const refusal = this.options.head.refusal(statusCode, upstreamHeaders);
    if (refusal !== undefined) {
      controller.abort(refusal);
      return;
    }
    const headers = this.options.head.headers(statusCode, upstreamHeaders);
    const contentType = upstreamHeaders['content-type'];
    // A 204 has no body (Node sends none, whatever is written to it): whatever its type says, it is
    // no stream and no JSON, and gets the gateway's own empty answer. Read as a stream, it reached
    // the client as one, which then waited on it for events it cannot carry (an error owed included).
    const bodyless = statusCode === 204;
    this.sse = !bodyless && isEventStream(contentType);
    // The body is known to be whole when one chunk of this length arrives (not for SSE: its events
    // are written as they come).
    const length = this.sse ? -1 : usableLength(upstreamHeaders['content-length']);
    this.wholeLength = length;
    const rewrite = this.rewrite;
    if (rewrite !== undefined) {
      // A response a rule must read is filtered whatever its status; one that cannot be read (a
      // body that is neither JSON nor SSE) is never passed on: a 2xx is refused, any other status
      // keeps its status with a body of the gateway's own. The content type is the one the body
      // was read as (a repeated or odd one could make a client read it as the other).
      if (this.sse) {
        this.sseRewrite = true;
        headers['content-type'] = 'text/event-stream';
      } else if (!bodyless && isJson(contentType)) {
        this.holding = true;
        this.heldLength = length;
        headers['content-type'] = 'application/json';
      } else if (
        statusCode < 300 &&
        statusCode !== 202 &&
        statusCode !== 204 &&
        length !== 0 &&
        rewrite.bodyless !== true
      ) {
        controller.abort(
          new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'upstream sent an invalid response' }),
        );
        return;
      } else {
        // A 202 or 204, or a 2xx whose head says it has no body (an HTTP+SSE server's acceptance:
        // the Java SDK's is a 200 with Content-Length 0): the exchange's requests may be owed an
        // answer in it.
        if (statusCode < 300) {
          try {
            rewrite.settle?.(statusCode, length === 0);
          } catch (err) {
            controller.abort(err as Error);
            return;
          }
        }
        this.sse = false;
        const own = unreadBody(statusCode);
        this.replacement = own.body;
        delete headers['content-type'];
        if (own.type !== undefined) headers['content-type'] = own.type;
        headers['content-length'] = String(own.body.length);
      }
      // (The allowlist passes no Content-Length: this only keeps it so.)
      if ((this.sseRewrite || this.holding) && headers['content-length'] !== undefined)
        delete headers['content-length'];
    }
    if (this.sse) {
      headers['x-accel-buffering'] = 'no';
      headers['cache-control'] = 'no-cache, no-transform';
    }
    try {
      this.hooks.onStart(statusCode, headers, upstreamHeaders);
    } catch (err) {
      // The upstream sent something the gateway cannot pass on (e.g. an invalid session id).
      this.stopKeepalive();
      this.releaseHeld();
      this.sseRewrite = false;
      this.sseRewriter = undefined;
      this.holding = false;
      controller.abort(err as Error);
      return;
    }
    if (this.res.destroyed) return;
    if (this.holding) {
      this.heldStatus = statusCode;
      this.heldHeaders = headers;
      return;
    }
    this.res.writeHead(statusCode, flatHead(headers));
    if (this.sse) {
      // An SSE client must see the stream open before the first event: the headers go out with the
      // first bytes that came with them (one write, not two), else on their own at the next tick.
      this.headPending = true;
      process.nextTick(flushHead, this);
      this.options.keepalive.add(this);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.options.sweep?.add(chunk.length);
    if (this.res.destroyed || this.replacement !== undefined) return;
    if (this.holding) {
      this.hold(controller, chunk);
      return;
    }
    if (this.sseRewrite) {
      let out: Buffer[];
      try {
        this.sseRewriter ??= this.rewrite!.sse(this.options.budget);
        out = this.sseRewriter.push(chunk);
      } catch (err) {
        controller.abort(err as Error);
        return;
      }
      for (const piece of out) this.write(controller, piece);
      return;
    }
    if (this.whole === undefined && chunk.length === this.wholeLength) {
      // The whole body in one chunk (small JSON answers): end() sends it with the headers.
      this.whole = chunk;
      return;
    }
    if (this.whole !== undefined) {
      this.write(controller, this.whole);
      this.whole = undefined;
    }
    this.wholeLength = -1;
    this.write(controller, chunk);
  }

  onResponseEnd(): void {
    this.stopKeepalive();
    if (!this.res.destroyed) {
      const heldHeaders = this.heldHeaders;
      if (this.holding && heldHeaders !== undefined) {
        const rewrite = this.rewrite!;
        const held = this.held ? this.held.bytes() : (this.whole ?? EMPTY);
        let pieces: readonly Buffer[];
        try {
          // An error status with an empty body said JSON and holds none: like any body the gateway
          // cannot read, it keeps its status with an error of the gateway's own (not an empty
          // "JSON" body no client can read as an error).
          if (held.length === 0 && this.heldStatus >= 300) {
            pieces = [unreadBody(this.heldStatus).body];
            this.hooks.onUnreadable?.();
          } else pieces = rewrite.pieces ? rewrite.pieces(held) : [rewrite.json(held)];
          rewrite.settle?.(this.heldStatus);
        } catch (err) {
          // Nothing was written yet: the client gets a clean 502 instead of an unfiltered list; an
          // error status keeps its status (errorStatusKept).
          this.finish(
            this.heldStatus >= 400 ? errorStatusKept(err as Error, this.heldStatus) : (err as Error),
          );
          return;
        }
        let size = 0;
        let viewsHeld = false;
        for (const piece of pieces) {
          size += piece.length;
          if (this.held?.holds(piece)) viewsHeld = true;
        }
        // The rewrite kept no view of the held bytes (it copies what it keeps, and what it returns is
        // checked here): the buffer may hold the next list body.
        this.reuseHeld = this.held !== undefined && !viewsHeld;
        this.res.writeHead(this.heldStatus, flatHead(heldHeaders, size));
        // A large body goes out as the client takes it (tail-pump.ts), under send_timeout as a stream;
        // its bytes are counted as they are written (a cut one did not send them all).
        if (size > TAIL_SLICE) this.tail = new TailPump(this.res, pieces, this);
        else {
          this.hooks.onBytes(size);
          if (pieces.length === 1) this.res.end(pieces[0]);
          else {
            // One writev with the head: the pieces of a remembered list are views, never copied.
            this.res.cork();
            for (const piece of pieces) this.res.write(piece);
            this.res.end();
          }
        }
      } else {
        // A rewritten stream that carried no bytes still ends through its rewriter (it may owe the
        // client an answer: match.ts).
        if (this.sseRewrite) this.sseRewriter ??= this.rewrite!.sse(this.options.budget);
        if (this.sseRewriter) for (const out of this.sseRewriter.end()) this.write(undefined, out);
        if (this.replacement !== undefined) {
          // (Told here, not when the head came: a gateway that ends the response first says why.)
          if (this.res.statusCode >= 300) this.hooks.onUnreadable?.();
          this.endWith(this.replacement);
        } else if (this.whole !== undefined && !this.holding) {
          // (A held body is never written unrewritten.)
          this.endWith(this.whole);
        } else this.res.end();
      }
    }
    this.finish(undefined);
    if (this.tail !== undefined) this.tail.pump();
    else this.watchEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.stopKeepalive();
    const res = this.res;
    let answered = false;
    if (res.headersSent && !res.writableEnded && !res.destroyed) {
      if (this.replacement !== undefined) {
        // A body the gateway drops for its own (its head written with that body's length): the
        // upstream failing before its end takes nothing from the client's answer. Cut, the client got
        // no answer at all (the head was not sent yet), where it gets the status and the gateway's error.
        this.endWith(this.replacement);
        answered = true;
      } else if (this.sseRewrite) {
        // A stream whose upstream failed (its connection dropped, an event too large to hold) ends
        // as one its upstream ended, with an error for each request it still owes (match.ts): cut, a
        // client that had no event id to resume at waited for those answers until its own timeout.
        this.endStreamOwing(mapUpstreamError(error));
        res.end();
        answered = true;
      }
    }
    this.finish(error, answered);
    // (After finish, which clears the stall timer this arms.)
    if (answered) this.watchEnd();
  }

  /**
   * Writes a stream's end as its rewriter gives it, the requests it still owes answered with
   * `error` (the gateway's refusal, or the upstream's failure), before the response is ended.
   */
  private endStreamOwing(error: GatewayError): void {
    this.rewrite!.endedBy?.(error);
    this.sseRewriter ??= this.rewrite!.sse(this.options.budget);
    for (const out of this.sseRewriter.end()) this.write(undefined, out);
  }

  /** Ends the response with `body` (the gateway's own, or a whole small answer), counted as sent. */
  private endWith(body: Buffer): void {
    this.hooks.onBytes(body.length);
    this.res.end(body);
  }

  /** The SSE headers, unless bytes written since carried them (or the response is over). */
  flushHead(): void {
    if (!this.headPending) return;
    this.headPending = false;
    if (!this.res.destroyed && !this.res.writableEnded) this.res.flushHeaders();
  }

  private write(controller: Dispatcher.DispatchController | undefined, chunk: Buffer): void {
    if (chunk.length === 0) return;
    // Node sends the pending head with these bytes.
    this.headPending = false;
    this.hooks.onBytes(chunk.length);
    if (this.sse) {
      this.options.keepalive.touch(this);
      const last = chunk[chunk.length - 1];
      const prev = chunk.length > 1 ? chunk[chunk.length - 2] : undefined;
      this.atBoundary =
        (last === 0x0a && (prev === 0x0a || prev === 0x0d)) || (last === 0x0d && prev === 0x0d);
    }
    if (!this.res.write(chunk) && controller && !controller.paused) {
      controller.pause();
      this.onDrain ??= () => {
        this.watch?.clear();
        this.controller?.resume();
      };
      this.res.once('drain', this.onDrain);
      this.sendWatch()?.paused();
    }
  }

  /**
   * The client took none of the bytes for `sendTimeoutMs` while the upstream waited (or a large held
   * body's slice waited): the response is cut, unless it is over.
   */
  stalled(): void {
    if ((this.done && this.tail === undefined) || this.res.destroyed) return;
    this.cut();
  }

  /** Cuts the response (its 'close' aborts the upstream request and settles the audit line). */
  cut(): void {
    this.hooks.onStalled?.();
    this.res.destroy();
  }

  sendWatch(): SendWatch | undefined {
    const ms = this.options.sendTimeoutMs;
    return ms === undefined ? undefined : (this.watch ??= new SendWatch(this.res, ms, this));
  }

  sent(bytes: number): void {
    this.hooks.onBytes(bytes);
  }

  /**
   * The pump is over (sent, cut, or its client gone): the held body's reservation, kept while its
   * pieces waited in memory for the client (finish leaves it), is given back.
   */
  pumped(): void {
    this.tail = undefined;
    this.releaseHeld();
  }

  /** The response was ended: a client that takes none of its unsent bytes is cut (send-watch.ts). */
  watchEnd(): void {
    // (Most responses are taken at once: no watch is made for them.)
    if (this.res.destroyed || this.res.writableLength === 0) return;
    this.sendWatch()?.ended();
  }

  /** Idle for the keepalive period (KeepaliveWheel): a comment, if it falls between events. */
  keepalive(): void {
    if (this.done || this.res.destroyed) {
      this.stopKeepalive();
      return;
    }
    if (this.atBoundary && this.res.writableLength === 0) {
      this.hooks.onBytes(KEEPALIVE.length);
      this.res.write(KEEPALIVE);
    }
  }

  private stopKeepalive(): void {
    this.options.keepalive.remove(this);
  }

  /**
   * Holds a chunk of a JSON body being rewritten, against the budget. A body that arrives as one
   * chunk of its Content-Length (small answers) is read from that chunk at the end, without a copy;
   * otherwise the chunks are copied into one buffer sized from Content-Length.
   */
  private hold(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const budget = this.options.budget ?? UNBOUNDED;
    if (this.held === undefined && this.whole === undefined && chunk.length === this.heldLength) {
      if (!budget.tryReserve(chunk.length)) {
        controller.abort(overloaded('a list response cannot be held: the gateway holds too many bodies'));
        return;
      }
      this.wholeReserved = chunk.length;
      this.whole = chunk;
      return;
    }
    let refusal: HoldRefusal | undefined;
    if (this.held === undefined) {
      this.held = new BodyBuffer(budget, MAX_REWRITE_BYTES, this.heldLength);
      if (this.whole !== undefined) {
        refusal = this.held.push(this.whole);
        this.whole = undefined;
        this.releaseWhole();
      }
    }
    refusal ??= this.held.push(chunk);
    if (refusal !== undefined) {
      this.held.release();
      controller.abort(
        refusal === 'too-large'
          ? Object.assign(new Error('list response too large to filter'), { code: 'UND_ERR_INFO' })
          : overloaded('a list response cannot be held: the gateway holds too many bodies'),
      );
    }
  }

  private releaseWhole(): void {
    if (this.wholeReserved === 0) return;
    (this.options.budget ?? UNBOUNDED).release(this.wholeReserved);
    this.wholeReserved = 0;
  }

  private releaseHeld(): void {
    this.held?.release(this.reuseHeld);
    this.releaseWhole();
    this.sseRewriter?.release?.();
  }

  private finish(error: Error | undefined, answered = false): void {
    if (this.done) return;
    // A stream that fails before its first event still opened (the client sees it cut, as later).
    if (error !== undefined) this.flushHead();
    this.done = true;
    // A large body about to be pumped keeps its reservation: its bytes (or the rewritten ones, about
    // as many) stay in memory until the client took them (pumped), which a slow client makes hours.
    if (this.tail === undefined) this.releaseHeld();
    this.watch?.clear();
    if (this.onDrain !== undefined) this.res.off('drain', this.onDrain);
    this.hooks.onDone(error, answered);
  }
}

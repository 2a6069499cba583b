/**
 * What the relay (relay.ts) is given and tells: how a response a rule must read is rewritten, and
 * the hooks the pipeline follows an exchange by. Shared by the relay, the integrity step and the
 * transports, none of which needs the relay itself.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { BufferBudget } from './body-buffer.ts';
import type { GatewayError } from '../jsonrpc/errors.ts';
import type { ResponseHead } from './response-headers.ts';
import type { KeepaliveWheel } from './keepalive.ts';

/** How a response is rewritten, when a rule must read it. */
export interface ResponseRewrite {
  /**
   * A whole application/json body; returns the bytes to send. It keeps no view of `body` once it
   * returns, except in the bytes it returns: the relay reuses a held body's buffer otherwise.
   */
  json(body: Buffer): Buffer;
  /**
   * The same bytes as json(), in pieces sent in order (one write each, corked): a rewrite that would
   * otherwise copy large parts of an unchanging source into one Buffer (a remembered list) gives
   * views of it. None views `body`.
   */
  pieces?(body: Buffer): readonly Buffer[];
  /**
   * Called once a held application/json body was rewritten, before it is passed on with `status`,
   * and for a 2xx with no body to read (202, 204, or `empty`: a Content-Length of 0): throws when
   * that cannot be (a 2xx that leaves a request the exchange forwarded unanswered: an empty body, a
   * lone notification, part of a batch; no body where requests are answered in the body).
   */
  settle?(status: number, empty?: boolean): void;
  /**
   * The stream ends with `error`: the gateway ends it itself (a reload refused its key, its
   * credential expired, shutdown), or its upstream failed mid-stream (the relay records that
   * failure). A request still owed an answer when the stream ends gets `error`, not the error of an
   * upstream that ended the stream unanswered.
   */
  endedBy?(error: GatewayError): void;
  /** An SSE stream: an incremental rewriter, holding its unfinished event within `budget`. */
  sse(budget?: BufferBudget): SseRewriterLike;
  /** The exchange answers no request (DELETE): a 2xx body of no readable type is dropped, not refused. */
  readonly bodyless?: boolean;
}

export interface SseRewriterLike {
  push(chunk: Buffer): Buffer[];
  end(): Buffer[];
  /** Gives back what an unfinished event holds (the exchange ended early). */
  release?(): void;
}

export interface RelayHooks {
  /** Response status and headers arrived (before anything is written to the client). */
  onStart(status: number, headers: Record<string, string | string[]>, upstream: IncomingHttpHeaders): void;
  /**
   * The exchange is over: `error` is set when the upstream failed (before or after headers).
   * `answered`: the relay ended the response itself on that failure (the gateway's own body, a
   * stream's owed errors), so the failure is recorded and nothing more is sent.
   */
  onDone(error: Error | undefined, answered?: boolean): void;
  /** Bytes written to the client. */
  onBytes(n: number): void;
  /**
   * The upstream's error status came with a body the gateway could not read (not JSON where a rule
   * must read it, or none): the client gets the gateway's own error in its place.
   */
  onUnreadable?(): void;
  /** The client took no bytes for `sendTimeoutMs`: the relay cuts the response after this. */
  onStalled?(): void;
}

/** What every relay of a handler shares (built once). */
export interface RelayConfig {
  /** Sends the keepalive comments of idle SSE responses (one timer for every stream). */
  readonly keepalive: KeepaliveWheel;
  /** Which upstream responses are refused, and which of their headers the client sees. */
  readonly head: ResponseHead;
  /** Held list bodies are reserved against this budget (limits.max_buffered_bytes). */
  readonly budget?: BufferBudget;
  /** Told the size of every upstream body chunk (server/young-sweep.ts frees their buffers). */
  readonly sweep?: { add(bytes: number): void };
  /**
   * limits.send_timeout: a response paused this long for its client (which takes none of its bytes)
   * is cut, so a client that stops reading cannot hold the upstream connection. None: no limit.
   */
  readonly sendTimeoutMs?: number;
}

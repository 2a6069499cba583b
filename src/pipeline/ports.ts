/**
 * The steps the handler runs, as small interfaces. serve.ts builds each from the config once;
 * tests can swap any of them. Every step either fills the context or throws a GatewayError.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestContext } from './context.ts';
import type { GatewayError } from '../jsonrpc/errors.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import type { Plan, Untagged } from '../integrity/request-tag.ts';
import type { ResponseRewrite } from '../proxy/relay.ts';
import type { UpstreamErrorKind } from '../proxy/upstream-error.ts';

export interface AuthenticateStep {
  /**
   * Sets ctx.principal, or throws a 401 (403) GatewayError (ctx.reason says why). A bearer JWT not
   * yet verified returns a promise that settles the same way.
   */
  (ctx: RequestContext): void | Promise<void>;
}

export interface SessionStep {
  /** The upstream's session id for the client's, or throws ERR_SESSION_NOT_FOUND. */
  inbound(ctx: RequestContext, clientSessionId: string): string;
  /** The id the client sees for one the upstream issued. */
  outbound(ctx: RequestContext, upstreamSessionId: string): string;
}

export interface Inspection {
  /** The bytes to forward (the canonical serialisation of what was judged). */
  readonly bytes: Buffer;
  /** Set when the gateway answers itself (a denied call): the status and the JSON body. */
  readonly answer: { readonly status: number; readonly body: string } | undefined;
  /** What each request's response needs (list filtering, task ownership), by client id. */
  readonly plans: ReadonlyMap<JsonRpcId, Plan> | undefined;
}

export interface InspectStep {
  /** Parses and judges a POST body; fills ctx.messages and ctx.calls; throws on invalid input. */
  (ctx: RequestContext, body: Buffer): Inspection;
}

/**
 * A transport other than Streamable HTTP (the older HTTP+SSE one, src/transport/sse/): where a
 * request goes upstream, and how its GET stream is read. Absent for Streamable HTTP.
 */
export interface TransportStep {
  /** The HTTP methods the endpoint takes (the Allow header). */
  readonly allow: string;
  /** A GET stream's rewrite (instead of the stream guard). */
  stream(ctx: RequestContext): ResponseRewrite;
  /**
   * An authenticated POST, before its body is read: where it goes. Throws ERR_SESSION_NOT_FOUND for
   * a session the gateway did not hand out to this principal (it never reaches the upstream).
   */
  post(ctx: RequestContext): PostRoute;
  /**
   * Whether the GET stream of `ctx` still owes answers to requests POSTed on its session (the
   * shutdown then leaves it open); if so, `settled` is called once it owes none.
   */
  owes?(ctx: RequestContext, settled: () => void): boolean;
}

export interface PostRoute {
  /** Path (with query) of the upstream request. */
  readonly path: string;
  /**
   * The upstream session the POST belongs to, which scopes its requests' pending cancellations
   * (integrity/cancels.ts) as Mcp-Session-Id does on Streamable HTTP; never forwarded as a header.
   */
  readonly session: string;
  /**
   * What its requests' tags are signed for instead of the principal alone: the principal and the
   * upstream session, so only that session's GET stream takes their answers.
   */
  readonly signedFor: string;
  /** The judged, rate-limited POST: what to do with it (an answer may be sent elsewhere). */
  judged(inspection: Inspection): Inspection;
  /**
   * Its upstream accepted it (202, or a 2xx with no body): these requests (tag → what it carries)
   * are answered on the session's GET stream, which owes them.
   */
  accepted?(tags: ReadonlyMap<string, Untagged>): void;
}

export interface RateLimitStep {
  /**
   * Takes one token from the key's bucket before a POST's body is read, a GET stream is opened or a
   * DELETE is forwarded, or throws ERR_RATE_LIMITED (at once, without the store, when the bucket is
   * known to be empty).
   */
  prepay(ctx: RequestContext): void | Promise<void>;
  /**
   * Takes the rest of what the messages in ctx.messages cost (a POST prepaid one token of its key's
   * bucket), or throws ERR_RATE_LIMITED; the token prepaid stays taken.
   */
  consume(ctx: RequestContext): void | Promise<void>;
  /**
   * Takes one token from the key's bucket for a request refused before it prepaid: a session id or
   * an event id the gateway did not issue, a protocol version that is none.
   */
  chargeRefused(ctx: RequestContext): void | Promise<void>;
  /** Opens a GET stream slot, or throws ERR_TOO_MANY_STREAMS; returns its release. */
  openStream(ctx: RequestContext): () => void;
  /**
   * Takes one of the key's `max_in_flight` slots for a request about to reach the upstream (POST,
   * DELETE), or throws ERR_TOO_MANY_IN_FLIGHT; returns the id to give it back with, undefined when
   * the principal has no limits.
   */
  enterUpstream(ctx: RequestContext): string | undefined;
  /** Gives back a slot enterUpstream took. */
  leaveUpstream(id: string): void;
}

export interface Observer {
  /** Called exactly once per request, when the response has finished, whatever happened. */
  finish(ctx: RequestContext): void;
  /** An upstream failure (the error itself for the operational log; never sent to a client). */
  upstreamError(kind: UpstreamErrorKind, error?: unknown): void;
  streamOpened(): void;
  streamClosed(): void;
  /**
   * Whether a new request's audit line can be kept now (the audit destination takes lines). While it
   * cannot, requests are refused: nothing runs that would go unrecorded. Absent: always.
   */
  accepting?(): boolean;
  /** The audit output is gone for good (audit/writer.ts lost()): the process can serve no request. */
  auditLost?(): boolean;
}

export interface Clock {
  /** Wall clock, ms since the epoch. */
  now(): number;
  /** Monotonic ms, for durations. */
  mono(): number;
}

export type HeaderCheck = (headers: IncomingHttpHeaders) => GatewayError | undefined;

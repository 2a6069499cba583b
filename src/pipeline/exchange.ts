/**
 * One request's state beside its context: the steps it runs with, the relay, a GET stream's slot,
 * whether it was forwarded, its links in the list of requests in flight. It is the relay's hooks
 * too (methods, not per-request closures), and it settles the context for the observer once, when
 * the response closes, whatever happened.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { RequestContext } from './context.ts';
import type { HandlerDeps, PipelineSteps } from './handler.ts';
import type { InflightList } from './inflight.ts';
import { sendError } from './respond.ts';
import type { Relay, RelayHooks } from '../proxy/relay.ts';
import { mapUpstreamError, upstreamErrorKind } from '../proxy/upstream-error.ts';
import type { ExpiryWatch } from './stream-expiry.ts';

/** What every request of one handler shares. */
export interface Shared {
  readonly deps: HandlerDeps;
  readonly streams: Map<RequestContext, Exchange>;
  readonly inflight: InflightList<Exchange>;
}

/** The response carries its exchange, so one shared listener serves every request's 'close'. */
const EXCHANGE = Symbol('mcpgate.exchange');
type Carrier = ServerResponse & { [EXCHANGE]?: Exchange };

function onResponseClose(this: ServerResponse): void {
  (this as Carrier)[EXCHANGE]?.closed();
}

/** The exchange a response belongs to (set when the request entered the list in flight). */
export function exchangeOf(res: ServerResponse): Exchange | undefined {
  return (res as Carrier)[EXCHANGE];
}

export class Exchange implements RelayHooks {
  readonly ctx: RequestContext;
  private readonly shared: Shared;
  /** The steps this request runs with (set when it starts). */
  steps: PipelineSteps | undefined = undefined;
  relay: Relay | undefined = undefined;
  /** A held stream's slot (GET, subscriptions/listen). */
  release: (() => void) | undefined = undefined;
  /** Ends a held stream when its credential expires. */
  expiry: ExpiryWatch | undefined = undefined;
  /** The key's max_in_flight slot this request holds while at the upstream (rate-limit.ts). */
  upstreamSlot: string | undefined = undefined;
  /** Told the session the upstream's answer opens, for requests sent without one (integrity/step.ts). */
  opened: ((upstreamSessionId: string) => void) | undefined = undefined;
  /** HTTP+SSE: told its upstream accepted the POST, whose answers then come on the GET stream. */
  accepted: (() => void) | undefined = undefined;
  /** The request was handed to the upstream client. */
  forwarded = false;
  /** Links of the handler's list of requests not yet finished (inflight.ts). */
  prevInflight: Exchange | undefined = undefined;
  nextInflight: Exchange | undefined = undefined;

  constructor(ctx: RequestContext, shared: Shared) {
    this.ctx = ctx;
    this.shared = shared;
  }

  /** Enters the list of requests in flight and waits for the response to close. */
  open(): void {
    this.shared.inflight.add(this);
    const res = this.ctx.res as Carrier;
    res[EXCHANGE] = this;
    res.on('close', onResponseClose);
  }

  onStart(status: number, headers: Record<string, string | string[]>, upstream: IncomingHttpHeaders): void {
    const ctx = this.ctx;
    const { deps } = this.shared;
    ctx.status = status;
    ctx.upstreamMs = deps.clock.mono() - (ctx.upstreamStartMono as number);
    headers['x-request-id'] = ctx.requestId;
    deps.cors.decorate(headers, ctx.req.headers.origin);
    // (A 202, or a 2xx without a body: the Java SDK's acceptance is a 200 with Content-Length 0.)
    if (
      this.accepted !== undefined &&
      (status === 202 || (status < 300 && upstream['content-length'] === '0'))
    )
      this.accepted();
    const issued = upstream['mcp-session-id'];
    if (typeof issued === 'string') {
      this.opened?.(issued);
      const sessions = this.steps?.sessions;
      headers['mcp-session-id'] = sessions ? sessions.outbound(ctx, issued) : issued;
    }
    if (status >= 500) {
      ctx.decision = 'upstream_error';
    }
  }

  onBytes(n: number): void {
    this.ctx.bytesOut += n;
  }

  /** The client got the gateway's error for an upstream error it could not read: its line says so. */
  onUnreadable(): void {
    this.ctx.decision = 'upstream_error';
    this.ctx.reason ??= 'ERR_UPSTREAM_PROTOCOL';
  }

  onStalled(): void {
    this.ctx.reason ??= 'ERR_CLIENT_STALLED';
  }

  onDone(error: Error | undefined, answered = false): void {
    if (error === undefined) return;
    const ctx = this.ctx;
    const res = ctx.res;
    // The client left, or the shutdown cut the response: not the upstream's failure.
    // The gateway itself ended the response (shutdown, reload): nothing more to send.
    if (ctx.aborted || ctx.cutByShutdown || res.destroyed || (res.writableEnded && !answered)) return;
    const kind = upstreamErrorKind(error);
    this.shared.deps.observer.upstreamError(kind, error);
    ctx.decision = 'upstream_error';
    const failure = mapUpstreamError(error);
    // The relay answered the client with the failure (errors on its stream, the gateway's own body).
    if (answered) ctx.reason ??= failure.code;
    else sendError(ctx, failure);
  }

  /** The response closed (finished or cut): settle the context and hand it to the observer, once. */
  closed(): void {
    const ctx = this.ctx;
    if (ctx.finished) return;
    const res = ctx.res;
    const { streams, inflight, deps } = this.shared;
    if (!res.writableFinished) {
      ctx.aborted = true;
      this.relay?.abort(new Error('client closed the request'));
      // Gone before the request was judged or forwarded: never recorded as allowed. Cut by the
      // shutdown, forwarded or not: its client did not get all of its answer.
      if (ctx.cutByShutdown && ctx.decision === 'allow') ctx.decision = 'deny';
      else if (!this.forwarded && ctx.decision === 'allow') {
        ctx.decision = 'aborted';
        ctx.reason ??= 'ERR_CLIENT_ABORTED';
      }
    }
    if (this.upstreamSlot !== undefined) {
      this.steps?.rateLimit.leaveUpstream(this.upstreamSlot);
      this.upstreamSlot = undefined;
    }
    if (this.release) {
      this.expiry?.cancel();
      this.release();
      streams.delete(ctx);
      deps.observer.streamClosed();
    }
    // The status the client received: none when no head went out, though the upstream's status was
    // taken when its head arrived (a JSON answer is held whole, its head written only then).
    if (ctx.status === 0 || !res.headersSent) ctx.status = res.headersSent ? res.statusCode : 499;
    inflight.delete(this);
    ctx.finished = true;
    deps.observer.finish(ctx);
  }
}

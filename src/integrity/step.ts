/**
 * The pipeline's hook for request tagging and response matching (one step, used by handler.ts):
 * `forward` tags a judged POST body and returns the rewrite that matches and filters its response;
 * `stream` returns the rewrite for a GET stream. Every POST and every GET gets one, so no response
 * reaches the client with an id the gateway did not restore, whatever the principal's grants.
 * Event ids on every stream are sealed for the principal (event-ids.ts), and `resume` opens the
 * `Last-Event-ID` a GET presents, so no client resumes at a point of another key's stream.
 */
import type { RequestContext } from '../pipeline/context.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import type { ResponseRewrite } from '../proxy/relay.ts';
import type { TaskOwnership } from '../policy/tasks.ts';
import type { PendingTags } from './cancels.ts';
import { exchangeIds, exchangeIdsOf, MatchRewrite, signedIds, tagRequests } from './match.ts';
import type { Filters, ForwardedTag, MatchOptions } from './match.ts';
import type { EventIds } from './event-ids.ts';
import type { Cursors } from './cursors.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import type { Plan, RequestTagger, Untagged } from './request-tag.ts';
import type { ResponseIds } from './match.ts';
import { StreamAnswers } from './response-ids.ts';
import type { Pinning } from '../pinning/pins.ts';

export interface IntegrityStep {
  /** The bytes to forward for a judged POST body, and the rewrite for its response. */
  forward(
    ctx: RequestContext,
    bytes: Buffer,
    plans: ReadonlyMap<JsonRpcId, Plan> | undefined,
    sessionId: string | undefined,
    /** What the tags are signed for, when not the principal's binding (transport/sse/session-ids.ts). */
    signedFor?: string,
  ): {
    readonly bytes: Buffer;
    readonly rewrite: ResponseRewrite;
    /**
     * For requests sent without a session (initialize): told the session the upstream opened in its
     * answer's headers, so a GET stream of that session may replay their answers (opened() below).
     */
    readonly opened?: ((upstreamSessionId: string) => void) | undefined;
  };
  /**
   * The rewrite for a GET stream (it may replay responses of earlier POSTs of the same upstream
   * session, `sessionId`).
   */
  stream(ctx: RequestContext, sessionId: string | undefined): ResponseRewrite;
  /** The rewrite for a DELETE: it forwards no request, so no response in its body may pass. */
  closing(ctx: RequestContext): ResponseRewrite;
  /**
   * The upstream event id to resume a GET stream after: the one in the `Last-Event-ID` the
   * gateway sealed for this principal, undefined without one; a GatewayError for any other.
   */
  resume(ctx: RequestContext): string | undefined;
}

export interface IntegrityOptions {
  readonly tagger: RequestTagger;
  readonly tasks: TaskOwnership;
  readonly pending: PendingTags;
  /** Tool-definition pinning, when on: every list a plan filters is judged against the lockfile. */
  readonly pinning?: Pinning | undefined;
  /** Seals event ids for the client and opens them again (keyed by the session secret). */
  readonly eventIds: EventIds;
  /** Seals list cursors for the client (keyed by the session secret). */
  readonly cursors: Cursors;
}

/** Most tags of requests sent without a session remembered with the session their answer opened. */
export const MAX_OPENED = 10_000;

export function createIntegrityStep(options: IntegrityOptions): IntegrityStep {
  const { tagger, tasks, pending, pinning, eventIds, cursors } = options;
  /**
   * Tag of an initialize (sent without a session: signed for the principal alone) → the upstream
   * session its answer opened. An initialize is tagged before its session exists, and a client whose POST
   * stream ends after the server's priming event (SEP-1699; the SDK client does this) resumes it with
   * a GET of the new session: that stream takes the answer's tag as one of its session's, and only
   * that session's (inSession). Bounded: the oldest are forgotten first (their replay is then refused).
   */
  const opened = new Map<string, string>();
  function remember(tags: Iterable<string>, upstreamSessionId: string): void {
    for (const tag of tags) {
      if (opened.size >= MAX_OPENED) opened.delete(opened.keys().next().value as string);
      opened.set(tag, upstreamSessionId);
    }
  }
  // One function for every exchange: the key its cancellation waits under travels with the tag.
  const forgetAnswered = (tag: string, forwarded: ForwardedTag) => {
    if (forwarded.pending !== undefined) pending.forget(forwarded.pending, tag);
  };
  function principalOf(ctx: RequestContext) {
    const principal = ctx.principal;
    if (principal === undefined) throw new TypeError('integrity step before authenticate');
    return principal;
  }
  function filtersFor(ctx: RequestContext): Filters {
    const principal = principalOf(ctx);
    return {
      grants: principal.grants,
      tasks: tasks.scope(principal.bindingId, principal.grants),
      pins: pinning?.forList((report) => (ctx.pinReports ??= []).push(report)),
      cursors: cursors.sealerFor(principal.bindingId),
    };
  }
  /** Each stream's event ids are sealed for its principal (a function made when an SSE stream starts). */
  function sealFor(ctx: RequestContext): (id: string) => string {
    const bindingId = principalOf(ctx).bindingId;
    return (id) => eventIds.seal(bindingId, id);
  }
  const streaming: MatchOptions<RequestContext> = {
    onRefused: refusedEvent,
    onEndedOwing: endedOwing,
    eventIds: sealFor,
  };
  // Streamable HTTP answers a POST's requests in its body; the HTTP+SSE transport (its tags signed
  // for the upstream session: `signedFor`) on its stream, after a 202.
  const answering: MatchOptions<RequestContext> = { ...streaming, answersInBody: true };
  const onStream: MatchOptions<RequestContext> = { ...streaming, answersOnStream: true };
  // A DELETE forwards no request; an SSE answer to it has its event ids sealed all the same.
  const closing: MatchOptions<RequestContext> = { ...streaming, bodyless: true };
  return {
    forward(ctx, bytes, plans, sessionId, signedFor) {
      const bindingId = principalOf(ctx).bindingId;
      const messages = ctx.messages ?? [];
      const context = {
        tagger,
        bindingId,
        signedFor: signedFor ?? inSession(bindingId, sessionId),
        sessionId,
        pending,
      };
      const forwarded = tagRequests(bytes, messages, plans, context);
      const ids = exchangeIdsOf(forwarded, forgetAnswered);
      // The filters are built when a response first needs them (never for the common small answer).
      const options = signedFor === undefined ? answering : onStream;
      const rewrite = new MatchRewrite(ids, filtersFor, ctx, options);
      // An initialize only: another request sent without a session (a stateless one) opens none,
      // and an upstream naming a session in its answer would let that session's GET stream take a
      // tag of a request made outside it.
      if (sessionId !== undefined || signedFor !== undefined || !opensSession(messages))
        return { bytes: forwarded.bytes, rewrite };
      const tags = forwarded.tags;
      return {
        bytes: forwarded.bytes,
        rewrite,
        opened: (upstreamSessionId: string) => remember(tags.keys(), upstreamSessionId),
      };
    },
    stream(ctx, sessionId) {
      const bindingId = principalOf(ctx).bindingId;
      const signed = inSession(bindingId, sessionId);
      const ids =
        signed === undefined
          ? signedIds(tagger, bindingId)
          : new SessionIds(tagger, signed, bindingId, sessionId as string, opened);
      return new MatchRewrite(ids, filtersFor, ctx, streaming);
    },
    closing(ctx) {
      principalOf(ctx); // the filters are built later: fail here, as the other paths do, without a principal
      return new MatchRewrite(exchangeIds(new Map()), filtersFor, ctx, closing);
    },
    resume(ctx) {
      const presented = ctx.req.headers['last-event-id'];
      if (presented === undefined || presented === '') return undefined;
      const id =
        typeof presented === 'string' ? eventIds.open(principalOf(ctx).bindingId, presented) : undefined;
      if (id === undefined) {
        ctx.reason = 'ERR_INVALID_REQUEST';
        throw new GatewayError('ERR_INVALID_REQUEST', {
          message: 'invalid request: Last-Event-ID names no event this gateway sent to this key',
        });
      }
      return id;
    },
  };
}

/** Whether the body is one initialize request (what opens an upstream session). */
function opensSession(messages: readonly { method?: string; id?: unknown }[]): boolean {
  const only = messages.length === 1 ? messages[0] : undefined;
  return only !== undefined && only.method === 'initialize' && only.id !== undefined;
}

/**
 * A GET stream's ids in an upstream session: tags signed for the session (inSession), and tags of
 * requests sent before it existed whose answer opened it (the initialize that started it).
 */
class SessionIds implements ResponseIds {
  private readonly tagger: RequestTagger;
  private readonly signed: string;
  private readonly bindingId: string;
  private readonly sessionId: string;
  private readonly opened: ReadonlyMap<string, string>;
  private readonly answered = new StreamAnswers();

  constructor(
    tagger: RequestTagger,
    signed: string,
    bindingId: string,
    sessionId: string,
    opened: ReadonlyMap<string, string>,
  ) {
    this.tagger = tagger;
    this.signed = signed;
    this.bindingId = bindingId;
    this.sessionId = sessionId;
    this.opened = opened;
  }

  answer(id: string): Untagged | undefined {
    const untagged = this.name(id);
    return untagged !== undefined && this.answered.first(id) ? untagged : undefined;
  }

  name(id: string): Untagged | undefined {
    const untagged = this.tagger.untag(this.signed, id);
    if (untagged !== undefined || this.opened.get(id) !== this.sessionId) return untagged;
    return this.tagger.untag(this.bindingId, id);
  }
}

/**
 * What a Streamable HTTP request's tags are signed for in an upstream session: the principal and
 * the session, so a GET stream of one session takes no answer tagged in another. Signed for the
 * principal alone, a tag of a call answered long ago in one session untagged on the GET stream of
 * another, whose client (SDK clients number their requests from 0 in each session) could take it
 * for the answer to a request of its own with that id: a list-shaped result under a call's tag
 * passed unfiltered. The session id (an upstream's header value: no newline) comes first, after
 * its length, so the pair reads back one way only; a principal's binding starts with a letter
 * (`k:`, `o:`, `anonymous`) and the HTTP+SSE transport's with `/` (transport/sse/session-ids.ts).
 * Without a session (initialize, the stateless revision) tags are signed for the principal.
 */
export function inSession(bindingId: string, sessionId: string | undefined): string | undefined {
  return sessionId === undefined ? undefined : `${sessionId.length}:${sessionId}\n${bindingId}`;
}

/**
 * The stream's requests still owed got the error it was ended with (a reload's, an expiry's, a
 * shutdown's, its upstream's failure): the line names it. A stream the gateway ends at shutdown
 * sets no reason of its own (one delivered whole was delivered as it was), and its line said
 * `allow` with none while the client got `gateway is shutting down` for its request.
 */
function endedOwing(ctx: RequestContext, code: ErrorCode): void {
  ctx.reason ??= code;
}

/**
 * An event the upstream sent on this request's stream was refused (a response to no request it
 * may answer, data that is not JSON): the client got an error event in its place, and the audit
 * line says so, as it does for a refused JSON body (a 502).
 */
function refusedEvent(ctx: RequestContext): void {
  if (ctx.decision === 'allow') ctx.decision = 'upstream_error';
  ctx.reason ??= 'ERR_UPSTREAM_PROTOCOL';
}

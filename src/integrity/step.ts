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
import type { Filters, ForwardedRequests, ForwardedTag, MatchOptions } from './match.ts';
import { answerDigest } from './event-ids.ts';
import type { EventIds, Opened } from './event-ids.ts';
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
     * For an initialize (sent without a session): told the session the upstream opened in its
     * answer's headers, so its stream's event ids carry its answer to a GET of that session that
     * resumes it (event-ids.ts sealOpening).
     */
    readonly opened?: ((upstreamSessionId: string) => void) | undefined;
    /** With `signedFor` (HTTP+SSE): the requests forwarded, answered on the session's stream. */
    readonly tags?: ReadonlyMap<string, Untagged> | undefined;
  };
  /**
   * The rewrite for a GET stream (it may replay responses of earlier POSTs of the same upstream
   * session, `sessionId`, and, `resumed` at an initialize's event, that initialize's answer).
   */
  stream(ctx: RequestContext, sessionId: string | undefined, resumed?: Opened): ResponseRewrite;
  /** The rewrite for a DELETE: it forwards no request, so no response in its body may pass. */
  closing(ctx: RequestContext): ResponseRewrite;
  /**
   * Where a GET stream of the upstream session `sessionId` resumes: the upstream event id in the
   * `Last-Event-ID` the gateway sealed for this principal (and, sealed on an initialize's stream
   * for this session, the answer it may take), undefined without one; a GatewayError for any other.
   */
  resume(ctx: RequestContext, sessionId: string | undefined): Opened | undefined;
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

export function createIntegrityStep(options: IntegrityOptions): IntegrityStep {
  const { tagger, tasks, pending, pinning, eventIds, cursors } = options;
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
      // A plain call plans nothing: only a body with a plan may hold a task-creating call.
      if (plans !== undefined) countUnread(tasks, bindingId, forwarded);
      const ids = exchangeIdsOf(forwarded, forgetAnswered, context);
      // The filters are built when a response first needs them (never for the common small answer).
      const options = signedFor === undefined ? answering : onStream;
      // An initialize only: another request sent without a session (a stateless one) opens none,
      // and an upstream naming a session in its answer would let that session's GET stream take a
      // tag of a request made outside it.
      const tag = forwarded.tags.size === 1 ? forwarded.tags.keys().next().value : undefined;
      if (signedFor !== undefined)
        return {
          bytes: forwarded.bytes,
          rewrite: new MatchRewrite(ids, filtersFor, ctx, options),
          tags: forwarded.tags,
        };
      if (sessionId !== undefined || tag === undefined || !opensSession(messages))
        return { bytes: forwarded.bytes, rewrite: new MatchRewrite(ids, filtersFor, ctx, options) };
      // An initialize is tagged before its session exists, for the principal alone, and a GET stream
      // of a session takes only tags signed for it: a client whose POST stream ends after the
      // server's priming event (SEP-1699; the SDK client does this) resumes it with a GET of the new
      // session, on any replica or after a restart. The stream's event ids, once the answer's headers
      // named the session, carry the tag's digest to that GET, sealed for the session and principal.
      const opening = new Opening(eventIds, bindingId, answerDigest(tag));
      const sealing: MatchOptions<RequestContext> = { ...options, eventIds: () => opening.seal };
      return {
        bytes: forwarded.bytes,
        rewrite: new MatchRewrite(ids, filtersFor, ctx, sealing),
        opened: opening.opened,
      };
    },
    stream(ctx, sessionId, resumed) {
      const bindingId = principalOf(ctx).bindingId;
      const signed = inSession(bindingId, sessionId);
      if (signed === undefined)
        return new MatchRewrite(signedIds(tagger, bindingId), filtersFor, ctx, streaming);
      const answer = resumed?.answer;
      const ids = new SessionIds(tagger, signed, bindingId, answer);
      if (answer === undefined) return new MatchRewrite(ids, filtersFor, ctx, streaming);
      // Resumed at an initialize's event: this stream's ids carry its answer on, so the client may
      // resume it again if it is cut before the answer.
      const seal = (id: string) => eventIds.sealOpening(signed, answer, id);
      return new MatchRewrite(ids, filtersFor, ctx, { ...streaming, eventIds: () => seal });
    },
    closing(ctx) {
      principalOf(ctx); // the filters are built later: fail here, as the other paths do, without a principal
      return new MatchRewrite(exchangeIds(new Map()), filtersFor, ctx, closing);
    },
    resume(ctx, sessionId) {
      const presented = ctx.req.headers['last-event-id'];
      if (presented === undefined || presented === '') return undefined;
      const bindingId = principalOf(ctx).bindingId;
      const id =
        typeof presented === 'string'
          ? eventIds.resume(bindingId, inSession(bindingId, sessionId), presented)
          : undefined;
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

/**
 * Each task-creating call forwarded is unread until an answer carrying its tag is read
 * (policy/unread-tasks.ts): counted before its bytes leave, so no answer can come first.
 */
function countUnread(tasks: TaskOwnership, bindingId: string, forwarded: ForwardedRequests): void {
  const { soleEntry } = forwarded;
  if (soleEntry !== undefined) return countCall(tasks, bindingId, soleEntry.plan);
  for (const entry of forwarded.tags.values()) countCall(tasks, bindingId, entry.plan);
}

function countCall(tasks: TaskOwnership, bindingId: string, plan: Plan): void {
  if (typeof plan === 'object' && plan.call !== undefined)
    tasks.unread.forwarded(bindingId, plan.call, plan.tool);
}

/** Whether the body is one initialize request (what opens an upstream session). */
function opensSession(messages: readonly { method?: string; id?: unknown }[]): boolean {
  const only = messages.length === 1 ? messages[0] : undefined;
  return only !== undefined && only.method === 'initialize' && only.id !== undefined;
}

/**
 * The event ids of an initialize's stream: sealed as any until its answer's headers name the session
 * it opened, then as openings of that session that carry the initialize's answer (event-ids.ts).
 */
class Opening {
  private session: string | undefined = undefined;
  private readonly eventIds: EventIds;
  private readonly bindingId: string;
  private readonly answer: string;

  constructor(eventIds: EventIds, bindingId: string, answer: string) {
    this.eventIds = eventIds;
    this.bindingId = bindingId;
    this.answer = answer;
  }

  readonly opened = (upstreamSessionId: string): void => {
    this.session = inSession(this.bindingId, upstreamSessionId);
  };

  readonly seal = (id: string): string =>
    this.session === undefined
      ? this.eventIds.seal(this.bindingId, id)
      : this.eventIds.sealOpening(this.session, this.answer, id);
}

/**
 * A GET stream's ids in an upstream session: tags signed for the session (inSession), and, on a
 * stream resumed at an initialize's event (event-ids.ts sealOpening), that initialize's tag, signed
 * before the session existed, whose digest the event id carried.
 */
class SessionIds implements ResponseIds {
  private readonly tagger: RequestTagger;
  private readonly signed: string;
  private readonly bindingId: string;
  /** The digest of the initialize's tag this stream may take (answerDigest), if any. */
  private readonly initialize: string | undefined;
  private readonly answered = new StreamAnswers();

  constructor(tagger: RequestTagger, signed: string, bindingId: string, initialize: string | undefined) {
    this.tagger = tagger;
    this.signed = signed;
    this.bindingId = bindingId;
    this.initialize = initialize;
  }

  answer(id: string): Untagged | undefined {
    const untagged = this.name(id);
    return untagged !== undefined && this.answered.first(id) ? untagged : undefined;
  }

  name(id: string): Untagged | undefined {
    const untagged = this.tagger.untag(this.signed, id);
    if (untagged !== undefined || this.initialize === undefined || answerDigest(id) !== this.initialize)
      return untagged;
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
 * `allow` with none while the client got `gateway is shutting down` for its request; it says
 * `deny` now, as for a request refused at shutdown: the gateway answered it with its refusal.
 */
function endedOwing(ctx: RequestContext, code: ErrorCode): void {
  ctx.reason ??= code;
  if (code === 'ERR_SHUTTING_DOWN' && ctx.decision === 'allow') ctx.decision = 'deny';
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

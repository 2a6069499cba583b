/**
 * Response matching: the relay's rewrite (proxy/relay.ts) for every response to tagged requests and
 * for every GET stream. A JSON body or an SSE event passes only when each response in it answers a
 * request this exchange may answer (restore.ts); it then carries the client's ids, and each response
 * whose tag names a plan is filtered by it (policy/filter-list.ts: lists, task recording). Everything
 * is judged with a real parse: an event whose data is not JSON, or a response that is refused, is
 * replaced by an error event (UNREADABLE, id null), and a JSON body by a 502.
 *
 * Byte paths come first and hand anything they do not fully understand to the parse: a small
 * body answering an exchange's one request that plans nothing (small-match.ts: a strict scan, its id
 * compared with the tag the exchange sent), a large body (list-match.ts), and an SSE event that is
 * such a small response or a notification naming no request (event-match.ts).
 *
 * Which ids are answerable is response-ids.ts's: exchangeIds (a POST's own requests, each once) or
 * signedIds (a GET stream: any tag signed for the principal).
 *
 * Stable API for other transports (the HTTP+SSE transport matches its GET stream with this):
 *   const forwarded = tagRequests(bytes, messages, plans, { tagger, bindingId, sessionId, pending });
 *   // forward forwarded.bytes; read responses with:
 *   createMatchRewrite(exchangeIds(forwarded.tags), filters)   // or signedIds(tagger, bindingId)
 */
import { GatewayError, RPC } from '../jsonrpc/errors.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import type { ResponseRewrite } from '../proxy/relay.ts';
import type { SseRewriterLike } from '../proxy/relay-api.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';
import { createSseRewriter, DROP } from '../proxy/sse-rewrite.ts';
import { filterJsonResponseBody, rewriteEventData, unreadAgain } from '../policy/filter-list.ts';
import type { Grants } from '../policy/grants.ts';
import type { TaskScope } from '../policy/tasks.ts';
import type { ListPins } from '../pinning/pins.ts';
import { UNREADABLE } from '../policy/unreadable.ts';
import { hidesUpdate, withoutHiddenUpdates } from '../policy/hidden-updates.ts';
import { restoreEdits, restoreIds } from './restore.ts';
import { applyEdits, applyEditsToAscii } from './json-spans.ts';
import { LIST_MIN_BYTES, matchListResponse, NOT_JSON, REFUSED } from './list-match.ts';
import type { ForwardedTag, ResponseIds } from './restore.ts';
import { matchSmallResponse } from './small-match.ts';
import { matchEventBytes } from './event-match.ts';
import { parsedAsSpelled } from '../jsonrpc/key-check.ts';
import type { CursorSealer } from './cursors.ts';

export { tagRequests } from './restore.ts';
export { exchangeIds, exchangeIdsOf, signedIds } from './response-ids.ts';
export type { ForwardedRequests, ForwardedTag, ResponseIds, TagContext } from './restore.ts';

/** What the plans are applied with: the principal's grants and task scope, and pinning when on. */
export interface Filters {
  readonly grants: Grants;
  readonly tasks: TaskScope | undefined;
  readonly pins?: ListPins | undefined;
  /** Seals list cursors for the principal (cursors.ts). */
  readonly cursors?: CursorSealer | undefined;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const NOTHING_OWED: readonly string[] = Object.freeze([]);

export function createMatchRewrite(ids: ResponseIds, filters: Filters): ResponseRewrite {
  return new MatchRewrite(ids, filters);
}

/** What an exchange's rewrite does besides matching (each a function of its argument, no closures). */
export interface MatchOptions<A> {
  /** The exchange answers no request (DELETE). */
  readonly bodyless?: boolean;
  /**
   * The upstream answers the exchange's requests in the response's body (Streamable HTTP: a POST
   * holding a request MUST get JSON or an SSE stream), so a 202 or 204 leaves them unanswered. Not
   * on the HTTP+SSE transport, whose POSTs are answered 202 and their responses sent on the stream.
   */
  readonly answersInBody?: boolean;
  /**
   * The upstream answers the exchange's requests on another stream (the HTTP+SSE transport's GET
   * stream): the end of the response's own stream owes them nothing.
   */
  readonly answersOnStream?: boolean;
  /**
   * An SSE event was refused (replaced by the UNREADABLE error event), so the caller can record it;
   * a refused JSON body throws instead.
   */
  readonly onRefused?: (arg: A) => void;
  /**
   * The stream was ended with an error (endedBy) that its requests still owed an answer got, so the
   * caller can record why: a stream the gateway ends at shutdown is otherwise taken as delivered.
   */
  readonly onEndedOwing?: (arg: A, code: ErrorCode) => void;
  /** How the stream's event ids are sealed for the client (event-ids.ts), asked when one starts. */
  readonly eventIds?: (arg: A) => ((id: string) => string) | undefined;
}

/**
 * The rewrite of one exchange's responses, as one object with methods (no closures per request).
 * Its filters may be given as a function of a value, called the first time a response needs them:
 * the common answer (small-match.ts) reads none, so an exchange that gets it never builds them.
 */
export class MatchRewrite<A = undefined> implements ResponseRewrite {
  readonly #ids: ResponseIds;
  #filters: Filters | undefined;
  readonly #make: ((arg: A) => Filters) | undefined;
  readonly #arg: A | undefined;
  readonly #options: MatchOptions<A> | undefined;
  readonly bodyless: boolean;
  readonly #answersInBody: boolean;
  readonly #answersOnStream: boolean;
  /** The JSON body read last holds no response at all (only requests or notifications). */
  #noResponse = false;
  /** The error owed requests get when the gateway ended the stream (endedBy). */
  #endedBy: GatewayError | undefined = undefined;

  constructor(ids: ResponseIds, filters: Filters);
  constructor(ids: ResponseIds, make: (arg: A) => Filters, arg: A, options?: MatchOptions<A>);
  constructor(
    ids: ResponseIds,
    filters: Filters | ((arg: A) => Filters),
    arg?: A,
    options?: MatchOptions<A>,
  ) {
    this.#ids = ids;
    if (typeof filters === 'function') {
      this.#make = filters;
      this.#arg = arg;
    } else this.#filters = filters;
    this.#options = options;
    this.bodyless = options?.bodyless === true;
    this.#answersInBody = options?.answersInBody === true;
    this.#answersOnStream = options?.answersOnStream === true;
  }

  /** The filters, built on first use when they were given as a function. */
  filters(): Filters {
    return (this.#filters ??= (this.#make as (arg: A) => Filters)(this.#arg as A));
  }

  json(body: Buffer): Buffer {
    const out = this.pieces(body);
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  /**
   * A 2xx must answer every request of the exchange: one that leaves a request unanswered (an empty
   * body, a lone notification, part of a batch) is refused, so the client gets a 502 rather than a
   * request never answered. A 202 or 204 carries no answer by definition, nor does a 2xx whose head
   * says its body is empty (`empty`: how the Java SDK's HTTP+SSE servlet accepts a POST, 200 with
   * Content-Length 0): refused the same way when the requests are answered in the body
   * (`answersInBody`), passed on the HTTP+SSE transport.
   */
  settle(status: number, empty = false): void {
    if (this.bodyless || status < 200) return;
    if (status >= 300) {
      // An error status whose body holds no response (a server's ping, a log message): the client
      // got no JSON-RPC error for its request, only a message it has no use for under an error. It
      // gets the gateway's error for each request (with the upstream's status: relay.ts). So does a
      // batch the body answered in part: the requests it left out waited for ever, as a 2xx's would.
      // (An error with a null id answers none: the upstream's word on a body it could not read.)
      if (this.#ids.awaited?.() !== true) return;
      if (this.#noResponse) throw noAnswerUnder(status);
      if (this.#ids.answeredAny?.() === true) throw partlyUnder(status);
      return;
    }
    const accepted = status === 202 || status === 204 || empty;
    if (accepted && !this.#answersInBody) return;
    if (this.#ids.awaited?.() === true) throw accepted ? acceptedUnanswered(status) : unanswerable();
  }

  pieces(body: Buffer): readonly Buffer[] {
    if (body.length === 0) return [body];
    const ids = this.#ids;
    const small = matchSmallResponse(body, ids);
    if (small !== undefined) return [small];
    // Large bodies take the one-pass path (list-match.ts): lists, and responses that plan nothing.
    const listed = body.length < LIST_MIN_BYTES ? undefined : matchListResponse(body, ids, this.filters());
    if (listed === NOT_JSON)
      throw new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'upstream sent invalid JSON' });
    if (listed === REFUSED) throw unanswerable();
    if (listed !== undefined) return listed;
    let text: string;
    let value: unknown;
    try {
      text = decoder.decode(body);
      value = JSON.parse(text);
    } catch (cause) {
      throw new GatewayError('ERR_UPSTREAM_PROTOCOL', { cause });
    }
    // The ids go back into these bytes, judged by what JSON.parse read: it must be what they spell
    // (V8 can read a key as another the same bytes primed, `result` as `r\u006`: key-check.ts).
    const filters = this.filters();
    if (!parsedAsSpelled(text, value)) {
      unreadAgain(value, ids, filters.tasks);
      throw misread();
    }
    this.#noResponse = !holdsResponse(value);
    // Not an answer, and no JSON body can leave a message out: the body is refused, and with it any
    // answer to a task-creating call it holds (filter-list.ts unreadAgain).
    if (hidesUpdate(value, filters.grants, filters.tasks)) {
      unreadAgain(value, ids, filters.tasks);
      throw unanswerable();
    }
    const restored = restoreEdits(text, value, ids);
    if (restored === undefined) {
      // A refused answer to a task-creating call leaves it unread (filter-list.ts).
      unreadAgain(value, ids, filters.tasks);
      throw unanswerable();
    }
    // ASCII text (as long as its bytes): the ids are spliced into the bytes, nothing re-encoded.
    const out =
      text.length === body.length
        ? applyEditsToAscii(body, restored.edits)
        : Buffer.from(applyEdits(text, restored.edits));
    if (restored.plans === undefined) return [out];
    return [
      filterJsonResponseBody(
        out,
        restored.plans,
        filters.grants,
        filters.tasks,
        filters.pins,
        filters.cursors,
      ),
    ];
  }

  /** An event's outcome, told to onRefused when it was refused. */
  #judged(out: string | undefined): string | undefined {
    const onRefused = this.#options?.onRefused;
    if (out === UNREADABLE && onRefused !== undefined) onRefused(this.#arg as A);
    return out;
  }

  endedBy(error: GatewayError): void {
    this.#endedBy = error;
  }

  sse(budget?: BufferBudget): SseRewriterLike {
    const ids = this.#ids;
    const eventId = this.#options?.eventIds?.(this.#arg as A);
    return createSseRewriter((data) => this.#judged(matchEventData(data, ids, this.filters())), {
      budget,
      bytes: (raw) => matchEventBytes(raw, ids),
      eventId,
      onEnd: (resumable) => this.#owed(resumable),
    });
  }

  /**
   * A stream that ended with requests of the exchange unanswered and no event id for the client to
   * resume it at: an error for each, so no client waits for an answer that cannot come. Events
   * without an id (progress, a log message) promise nothing: an SDK client resumes only at an event
   * id, and waited on such a stream until its own timeout. One that gave an id is left as the
   * upstream ended it (the client resumes it, with Last-Event-ID, to get the answers).
   */
  #owed(resumable: boolean): readonly string[] {
    // On the HTTP+SSE transport a POST's answers come on the GET stream, whatever its own body was
    // (a stream ending empty included): owed an error here, a request got two answers, and the
    // POST's line blamed an upstream that did as that transport has it.
    if (resumable || this.#answersOnStream) return NOTHING_OWED;
    const unanswered = this.#ids.unanswered?.();
    if (unanswered === undefined || unanswered.length === 0) return NOTHING_OWED;
    // Ended by the gateway: its refusal, and the upstream failed in nothing.
    const ended = this.#endedBy;
    if (ended !== undefined) {
      this.#options?.onEndedOwing?.(this.#arg as A, ended.code);
      const error = { code: ended.rpcCode, message: ended.message };
      return unanswered.map((u) => JSON.stringify({ jsonrpc: '2.0', id: u.clientId, error }));
    }
    // A request a cancellation named is owed an error all the same, one that blames no upstream (it
    // rightly leaves it unanswered): without a session, two clients of one key share their ids, so
    // one's cancellation of its request 1 names the other's request 1 (cancels.ts) and the upstream
    // cancels that one, whose client, owed nothing, waited for its own timeout. The client that
    // cancelled ignores an answer after its cancellation, as the protocol has it.
    let blamed = false;
    const out = unanswered.map((u) => {
      const cancelled = (u as ForwardedTag).pending?.cancelled === true;
      if (!cancelled) blamed = true;
      const error = cancelled ? CANCELLED : UNANSWERED;
      return JSON.stringify({ jsonrpc: '2.0', id: u.clientId, error });
    });
    if (blamed) this.#judged(UNREADABLE);
    return out;
  }
}

const UNANSWERED = { code: RPC.UPSTREAM, message: 'upstream ended the stream without an answer' };
const CANCELLED = { code: RPC.UPSTREAM, message: 'request cancelled' };

function misread(): GatewayError {
  return new GatewayError('ERR_UPSTREAM_PROTOCOL', {
    message: 'upstream sent an object key the gateway did not read as spelled',
  });
}

function acceptedUnanswered(status: number): GatewayError {
  return new GatewayError('ERR_UPSTREAM_PROTOCOL', {
    message: `upstream answered ${status} to a request it must answer`,
  });
}

function partlyUnder(status: number): GatewayError {
  return new GatewayError('ERR_UPSTREAM_PROTOCOL', {
    message: `upstream answered ${status} with no response to a request of the batch`,
  });
}

function noAnswerUnder(status: number): GatewayError {
  return new GatewayError('ERR_UPSTREAM_PROTOCOL', {
    message: `upstream answered ${status} with no response to the request`,
  });
}

/** Whether a parsed body is, or a batch holds, a response (a member `result` or `error`). */
function holdsResponse(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(holdsResponse);
  return typeof value === 'object' && value !== null && ('result' in value || 'error' in value);
}

function unanswerable(): GatewayError {
  return new GatewayError('ERR_UPSTREAM_PROTOCOL', {
    message: 'upstream sent a response to no request the gateway forwarded',
  });
}

/**
 * One SSE event's data: its replacement (the client's ids back, lists filtered), undefined when it
 * passes as it is (no data, or a message naming no request), UNREADABLE, or DROP (an update of a
 * resource the key may not use: policy/hidden-updates.ts; a batch loses only such updates).
 */
export function matchEventData(data: string, ids: ResponseIds, filters: Filters): string | undefined {
  if (data.trim() === '') return undefined;
  if (data.length >= LIST_MIN_BYTES) {
    const listed = matchListResponse(Buffer.from(data), ids, filters);
    if (listed === NOT_JSON || listed === REFUSED) return UNREADABLE;
    if (listed !== undefined) return Buffer.concat(listed).toString();
  }
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return UNREADABLE;
  }
  if (!parsedAsSpelled(data, value)) {
    unreadAgain(value, ids, filters.tasks);
    return UNREADABLE;
  }
  if (hidesUpdate(value, filters.grants, filters.tasks)) {
    // In a batch only the updates go: a response beside them still answers its request.
    const rest = Array.isArray(value)
      ? withoutHiddenUpdates(data, value, filters.grants, filters.tasks)
      : undefined;
    return rest === undefined ? DROP : (matchEventData(rest, ids, filters) ?? rest);
  }
  const restored = restoreIds(data, value, ids);
  if (restored === undefined) {
    // A refused answer to a task-creating call leaves it unread (filter-list.ts).
    unreadAgain(value, ids, filters.tasks);
    return UNREADABLE;
  }
  if (restored.plans !== undefined) {
    const filtered = rewriteEventData(
      restored.text,
      restored.plans,
      filters.grants,
      filters.tasks,
      filters.pins,
      filters.cursors,
    );
    if (filtered !== undefined) return filtered;
  }
  return restored.text === data ? undefined : restored.text;
}

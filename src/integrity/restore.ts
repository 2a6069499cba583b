/**
 * Both halves of the id rewrite, on JSON text, in place (json-spans.ts): only the id values change.
 *
 * Toward the upstream (tagRequests): each request's id becomes a fresh tag (request-tag.ts), and a
 * `notifications/cancelled` names the tag of the request it cancels (cancels.ts). Responses the
 * client sends to the upstream's own requests keep their ids: those ids are the upstream's.
 *
 * Toward the client (restoreIds): a response passes only with an id this exchange may answer (see
 * ResponseIds), and gets the client's id back; a response without a usable id is refused, except an
 * error with a null id (an upstream's answer to a request it could not read names none, and carries
 * no result). A notification that names a request (`params.requestId` of a cancellation, the
 * 2026-07-28 `_meta["io.modelcontextprotocol/subscriptionId"]` of a subscription's notifications and
 * of the listen result) gets the client's id; a subscription id the gateway did not issue, or a
 * cancelled request id that looks like a tag but is not one this exchange may name, refuses the
 * notification (the client never sees a gateway id; the upstream's own ids, numbers for the SDKs,
 * pass). Requests from the upstream (sampling, elicitation, roots, ping) pass untouched. A message
 * that repeats a member read here is refused (read-once.ts): a first-wins client would read another.
 */
import type { JsonRpcId, JsonRpcMessage } from '../jsonrpc/message.ts';
import { applyEdits, DUPLICATE, messageStarts, pathSpan, skipSpace } from './json-spans.ts';
import type { Edit } from './json-spans.ts';
import type { Pending, PendingTags } from './cancels.ts';
import { rememberable } from './cancels.ts';
import { callOf, TAG_PREFIX } from './request-tag.ts';
import { mayNameBelow, mayRepeatUpdate, readOnce } from './read-once.ts';
import type { ReadKeys } from './read-once.ts';
import type { Plan, RequestTagger, Untagged } from './request-tag.ts';
import { caseVariant, MESSAGE_MEMBERS } from '../policy/case-variants.ts';

export const SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';
const CANCELLED = 'notifications/cancelled';

/** What the requests forwarded in one exchange were tagged with. */
export interface ForwardedRequests {
  /** The bytes to forward: the judged bytes with each request id replaced by its tag. */
  readonly bytes: Buffer;
  /** Tag → the client's id and the plan, for each request forwarded. */
  readonly tags: ReadonlyMap<string, ForwardedTag>;
  /** The tag, when the body is one request (what exchangeIds() is told, to find it without a walk). */
  readonly sole?: string | undefined;
  /** What that one tag carries (exchangeIdsOf() then answers it without a map). */
  readonly soleEntry?: ForwardedTag | undefined;
}

/**
 * A body of one request: its tag and entry, with `tags` made only when asked for (the pipeline
 * answers the exchange from the entry: see exchangeIdsOf in match.ts).
 */
class OneForwarded implements ForwardedRequests {
  readonly bytes: Buffer;
  readonly sole: string;
  readonly soleEntry: ForwardedTag;
  #tags: ReadonlyMap<string, ForwardedTag> | undefined = undefined;

  constructor(bytes: Buffer, sole: string, soleEntry: ForwardedTag) {
    this.bytes = bytes;
    this.sole = sole;
    this.soleEntry = soleEntry;
  }

  get tags(): ReadonlyMap<string, ForwardedTag> {
    return (this.#tags ??= new Map([[this.sole, this.soleEntry]]));
  }
}

/** What a tag forwarded in this exchange carries, and where its cancellation waits. */
export interface ForwardedTag extends Untagged {
  /** The pending-cancellation entry (PendingTags.remember), when the context has a PendingTags. */
  readonly pending: Pending | undefined;
}

export interface TagContext {
  readonly tagger: RequestTagger;
  /** The principal's binding: scopes cancellations. */
  readonly bindingId: string;
  /**
   * What the tags are signed for, when not `bindingId`: one that also names the upstream session
   * (the HTTP+SSE transport, transport/sse/session-ids.ts).
   */
  readonly signedFor?: string | undefined;
  /** The upstream session the requests belong to (scopes cancellations). */
  readonly sessionId: string | undefined;
  /** Where tags wait for a cancellation; none: cancellations name a tag no request has. */
  readonly pending: PendingTags | undefined;
}

/**
 * Tags the requests of a judged body. `bytes` is the serialisation of `messages` (one message, or
 * a batch of them in order); `plans` maps a request's client id to what its response needs.
 */
export function tagRequests(
  bytes: Buffer,
  messages: readonly JsonRpcMessage[],
  plans: ReadonlyMap<JsonRpcId, Plan> | undefined,
  context: TagContext,
): ForwardedRequests {
  if (messages.length === 1 && bytes[0] === OPEN_OBJECT) {
    const single = tagOne(bytes, messages[0] as Message, plans, context);
    if (single !== undefined) return single;
  }
  const tags = new Map<string, ForwardedTag>();
  let text: string | undefined;
  let starts: number[] | undefined;
  const edits: Edit[] = [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Message;
    let path: readonly string[];
    let replacement: string;
    if (m.method !== undefined && m.id !== undefined) {
      replacement = tagRequest(m.id, plans, context, tags);
      path = ['id'];
    } else if (m.method === CANCELLED && isId(m.params?.requestId)) {
      const clientId = m.params.requestId;
      path = ['params', 'requestId'];
      replacement =
        context.pending?.cancel(context.bindingId, context.sessionId, clientId) ??
        context.tagger.tag(context.signedFor ?? context.bindingId, clientId, 'none');
    } else continue;
    text ??= bytes.toString('utf8');
    starts ??= messageStarts(text);
    const span = pathSpan(text, starts[i] as number, path);
    // The gateway wrote these bytes from `messages`: the member is there, once.
    if (span === undefined || span === DUPLICATE) throw new TypeError('judged bytes do not match messages');
    edits.push({ start: span.start, end: span.end, text: JSON.stringify(replacement) });
  }
  if (text === undefined) return { bytes, tags };
  return { bytes: Buffer.from(applyEdits(text, edits)), tags };
}

type Message = { id?: JsonRpcId; method?: string; params?: Record<string, unknown> };

const OPEN_OBJECT = 0x7b;
const NO_TAGS: ReadonlyMap<string, ForwardedTag> = new Map();

/** A fresh tag for one request, remembered for its cancellation and added to `tags`. */
function tagRequest(
  clientId: JsonRpcId,
  plans: ReadonlyMap<JsonRpcId, Plan> | undefined,
  context: TagContext,
  tags: Map<string, ForwardedTag>,
): string {
  const plan = plans?.get(clientId) ?? 'none';
  const tag = context.tagger.tag(context.signedFor ?? context.bindingId, clientId, plan);
  const pending = rememberable(clientId)
    ? context.pending?.remember(context.bindingId, context.sessionId, clientId, tag)
    : undefined;
  tags.set(tag, { clientId, plan: withCall(plan, tag), pending });
  return tag;
}

/**
 * The common body, one message that is not a batch, without a string round trip: a request's id is
 * found from where JSON.stringify put it and the tag is spliced into the bytes; a message with no id
 * to replace is forwarded as it is. Undefined: the general path decides (a cancellation, or an id
 * member neither first, second after "jsonrpc", nor last).
 */
function tagOne(
  bytes: Buffer,
  m: Message,
  plans: ReadonlyMap<JsonRpcId, Plan> | undefined,
  context: TagContext,
): ForwardedRequests | undefined {
  if (m.method === undefined || m.id === undefined) {
    return m.method === CANCELLED ? undefined : { bytes, tags: NO_TAGS };
  }
  const id = m.id;
  const value = typeof id === 'number' ? String(id) : JSON.stringify(id);
  const start = serialisedIdStart(bytes, m, value);
  if (start === -1) return undefined;
  const end = start + value.length;
  const plan = plans?.get(id) ?? 'none';
  const tag = context.tagger.tag(context.signedFor ?? context.bindingId, id, plan);
  const pending = rememberable(id)
    ? context.pending?.remember(context.bindingId, context.sessionId, id, tag)
    : undefined;
  // A tag is ASCII that JSON writes as it is (request-tag.ts), so its JSON is the tag in quotes.
  const out = Buffer.allocUnsafe(bytes.length - value.length + tag.length + 2);
  let at = bytes.copy(out, 0, 0, start);
  out[at++] = QUOTE;
  at += out.write(tag, at, 'latin1');
  out[at++] = QUOTE;
  bytes.copy(out, at, end);
  return new OneForwarded(out, tag, { clientId: id, plan: withCall(plan, tag), pending });
}

/**
 * A task-creating call's plan names its call (request-tag.ts callOf), as untag() reads it: the
 * answer that carries it settles the call (policy/unread-tasks.ts). Any other plan is as it is.
 */
function withCall(plan: Plan, tag: string): Plan {
  return typeof plan === 'object' ? { tool: plan.tool, call: callOf(tag) } : plan;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const CLOSE_OBJECT = 0x7d;
const ID_FIRST = '{"id":';
const ID_SECOND = '{"jsonrpc":"2.0","id":';
const ID_KEY = '"id":';

/**
 * Where the id's value starts in `bytes`, the judged bytes of `m`, or -1. `value` is the id's JSON;
 * only an ASCII one is looked for (a string id with other characters takes the general path).
 * Judged bytes are the client's own when they hold no repeated key and no \u escape, else those
 * bytes without the members a repeated key replaced and with escaped strings re-spelled, or
 * JSON.stringify(m) (jsonrpc/parse.ts, splice.ts): every way a key "id" is spelled only as `"id"`,
 * once per object. Compact, an id member that is the first key, the second after
 * "jsonrpc" (always "2.0" in a valid message), or the last has a known place; the bytes there are
 * checked (the member name, the value's own serialisation, a `{` or `,` before the name, a `,` or
 * `}` after the value, so the name is a key of the top-level object), and any other spelling
 * (whitespace, another spelling of the value) takes the general path rather than a wrong splice.
 */
function serialisedIdStart(bytes: Buffer, m: Message, value: string): number {
  const keys = Object.keys(m);
  let start: number;
  if (keys[0] === 'id') start = bytesAre(bytes, 0, ID_FIRST) ? ID_FIRST.length : -1;
  else if (keys[0] === 'jsonrpc' && keys[1] === 'id')
    start = bytesAre(bytes, 0, ID_SECOND) ? ID_SECOND.length : -1;
  else if (keys[keys.length - 1] === 'id') start = bytes.length - 1 - value.length;
  else return -1;
  const end = start + value.length;
  const before = start - ID_KEY.length;
  if (start === -1 || before < 1 || end >= bytes.length) return -1;
  const opener = bytes[before - 1];
  const closer = bytes[end];
  if ((opener !== OPEN_OBJECT && opener !== COMMA) || (closer !== COMMA && closer !== CLOSE_OBJECT))
    return -1;
  return bytesAre(bytes, before, ID_KEY) && bytesAre(bytes, start, value) ? start : -1;
}

/** Whether `bytes` hold the ASCII `text` at `at` (false for text that is not ASCII). */
function bytesAre(bytes: Buffer, at: number, text: string): boolean {
  if (at < 0 || at + text.length > bytes.length) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || bytes[at + i] !== c) return false;
  }
  return true;
}

function isId(value: unknown): value is JsonRpcId {
  return typeof value === 'string' || (typeof value === 'number' && Number.isSafeInteger(value));
}

/** Which ids a response may carry, in one exchange or stream. */
export interface ResponseIds {
  /** A response's id: what it answers, or undefined when this exchange may not answer it (again). */
  answer(id: string): Untagged | undefined;
  /** An id a notification names (a subscription, a cancelled request): what it stands for. */
  name(id: string): Untagged | undefined;
  /**
   * What a tag signed for this exchange's principal (and session) carries, whichever exchange
   * forwarded it (a POST's: `name` knows only its own). Checks a MAC: for refused responses only
   * (filter-list.ts unreadAgain), never to let one pass.
   */
  signedTag?(id: string): Untagged | undefined;
  /**
   * The tag of the one request an exchange forwarded, while it is unanswered and its plan is
   * 'none' (small-match.ts compares a response's id bytes with it); undefined otherwise.
   */
  sole?(): string | undefined;
  /** Whether a request this exchange forwarded is still unanswered (GET streams: never said). */
  awaited?(): boolean;
  /** Whether a request this exchange forwarded was answered (GET streams: never said). */
  answeredAny?(): boolean;
  /** The requests this exchange forwarded that are still unanswered (GET streams: never said). */
  unanswered?(): readonly Untagged[];
}

/** The text with the client's ids back, and the plan of each response it holds. */
export interface Restored {
  readonly text: string;
  /** Client id → plan, for responses whose plan is not 'none'. */
  readonly plans: Map<JsonRpcId, Exclude<Plan, 'none'>> | undefined;
}

/** Where the client's ids go back into the text (restoreEdits), and the plan of each response. */
export interface Restoration {
  /** Replacements of ids in the text (none: the text passes as it is). */
  readonly edits: Edit[];
  readonly plans: Map<JsonRpcId, Exclude<Plan, 'none'>> | undefined;
}

/**
 * Restores the client's ids in `text`, whose JSON.parse is `value` (one message or a batch).
 * Returns undefined when any message in it must not reach the client.
 */
export function restoreIds(text: string, value: unknown, ids: ResponseIds): Restored | undefined {
  const restoration = restoreEdits(text, value, ids);
  if (restoration === undefined) return undefined;
  return { text: applyEdits(text, restoration.edits), plans: restoration.plans };
}

/** What restoreIds does, as edits of `text` (to apply to the text, or to its bytes when ASCII). */
export function restoreEdits(text: string, value: unknown, ids: ResponseIds): Restoration | undefined {
  const batch = Array.isArray(value);
  const count = batch ? (value as unknown[]).length : 1;
  if (count === 0) return undefined;
  let starts: number[] | undefined;
  const edits: Edit[] = [];
  let plans: Map<JsonRpcId, Exclude<Plan, 'none'>> | undefined;
  // Client ids answered so far (a batch only: one response cannot repeat itself).
  let answered: Set<JsonRpcId> | undefined;
  // The tags the responses answer, taken as answered only once every message passed: a response
  // refused after its tag was taken (a repeated result, a later message of its batch) left its
  // request answered though the client got only the gateway's error naming no request, and a stream
  // owed it nothing at its end (match.ts): the client waited for its own timeout.
  let tag: string | undefined;
  let moreTags: string[] | undefined;
  /** Whether the text may name something below a message's top level (read-once.ts). */
  let naming: boolean | undefined;
  /** ...or may repeat what names a notification or the resource an update names (read-once.ts). */
  let notifying: boolean | undefined;
  for (let i = 0; i < count; i++) {
    const item: unknown = batch ? (value as unknown[])[i] : value;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const m = item as Record<string, unknown>;
    // `"Result"` beside (or instead of) `result`: a case-folding client reads what was not judged.
    if (caseVariant(m, MESSAGE_MEMBERS) !== undefined) return undefined;
    const start = batch ? ((starts ??= messageStarts(text))[i] as number) : skipSpace(text, 0);
    const hasResult = Object.hasOwn(m, 'result');
    if (Object.hasOwn(m, 'method')) {
      if (hasResult || Object.hasOwn(m, 'error')) return undefined;
      if (Object.hasOwn(m, 'id')) continue; // a request from the upstream: its id is its own
      // A repeated method, params, requestId, _meta, subscription id, uri or taskId (the resource an
      // update names, the task a status names: policy/hidden-updates.ts): a first-wins client reads
      // another.
      if (
        (notifying ??= (naming ??= mayNameBelow(text)) || mayRepeatUpdate(text)) &&
        !readOnce(text, start, NOTIFICATION_READS)
      )
        return undefined;
      const params = m.params;
      if (typeof params !== 'object' || params === null) continue;
      const p = params as Record<string, unknown>;
      const requestId = p.requestId;
      if (typeof requestId === 'string') {
        const named = ids.name(requestId);
        if (named !== undefined) {
          if (!edit(edits, text, start, REQUEST_ID_PATH, named.clientId)) return undefined;
        } else if (requestId.startsWith(TAG_PREFIX)) {
          // A tag this exchange cannot translate: the client never sees a gateway id.
          return undefined;
        }
      }
      const subscription = subscriptionOf(p._meta);
      if (subscription !== undefined) {
        const named = typeof subscription === 'string' ? ids.name(subscription) : undefined;
        if (named === undefined || !edit(edits, text, start, PARAMS_SUBSCRIPTION_PATH, named.clientId))
          return undefined;
      }
      continue;
    }
    const id = m.id;
    if (id === null || id === undefined) {
      // An error that names no request (the upstream could not read one) passes; a result does not,
      // nor an id written twice (a first-wins client would read the other).
      if (hasResult || !Object.hasOwn(m, 'error')) return undefined;
      if (!readOnce(text, start, ID_READS)) return undefined;
      continue;
    }
    const untagged = typeof id === 'string' ? ids.name(id) : undefined;
    if (untagged === undefined) return undefined;
    if (tag === undefined) tag = id as string;
    else (moreTags ??= []).push(id as string);
    if (batch) {
      if ((answered ??= new Set()).has(untagged.clientId)) return undefined;
      answered.add(untagged.clientId);
    }
    if (!edit(edits, text, start, ID_PATH, untagged.clientId)) return undefined;
    // A repeated result, result._meta or subscription id: a first-wins client reads another. A
    // task-creating call's answer, whatever it holds: a result written twice may make a task the
    // registry never hears of (JSON.parse keeps the other), so its call would pass as answered.
    if (hasResult && typeof untagged.plan === 'object') {
      if (!readOnce(text, start, TASK_RESULT_READS)) return undefined;
    } else if (hasResult && (naming ??= mayNameBelow(text)) && !readOnce(text, start, RESULT_READS))
      return undefined;
    if (hasResult && typeof m.result === 'object' && m.result !== null) {
      const subscription = subscriptionOf((m.result as Record<string, unknown>)._meta);
      if (subscription !== undefined) {
        if (subscription !== id || !edit(edits, text, start, RESULT_SUBSCRIPTION_PATH, untagged.clientId))
          return undefined;
      }
    }
    if (untagged.plan !== 'none') (plans ??= new Map()).set(untagged.clientId, untagged.plan);
  }
  // (Not this exchange's to answer again: answered by an earlier response.)
  if (tag !== undefined && ids.answer(tag) === undefined) return undefined;
  if (moreTags !== undefined)
    for (const more of moreTags) if (ids.answer(more) === undefined) return undefined;
  return { edits, plans };
}

const ID_PATH = ['id'];
const META_READS: ReadKeys = new Map([[SUBSCRIPTION_ID, undefined]]);
const NOTIFICATION_READS: ReadKeys = new Map([
  ['method', undefined],
  [
    'params',
    new Map<string, ReadKeys | undefined>([
      ['requestId', undefined],
      ['_meta', META_READS],
      ['uri', undefined],
      // The task a status names (policy/hidden-updates.ts): a first-wins client would read a task
      // the key does not hold behind one it does.
      ['taskId', undefined],
    ]),
  ],
]);
const RESULT_READS: ReadKeys = new Map([['result', new Map([['_meta', META_READS]])]]);
const ID_READS: ReadKeys = new Map([['id', undefined]]);
/** RESULT_READS and what a CreateTaskResult names its task by (policy/tasks.ts createdTaskId). */
const TASK_RESULT_READS: ReadKeys = new Map([
  [
    'result',
    new Map<string, ReadKeys | undefined>([
      ['_meta', META_READS],
      ['task', new Map([['taskId', undefined]])],
      ['taskId', undefined],
      ['resultType', undefined],
    ]),
  ],
]);
const REQUEST_ID_PATH = ['params', 'requestId'];
const PARAMS_SUBSCRIPTION_PATH = ['params', '_meta', SUBSCRIPTION_ID];
const RESULT_SUBSCRIPTION_PATH = ['result', '_meta', SUBSCRIPTION_ID];

/** Adds the replacement of the value at `path` of the message at `start`; false if ambiguous or absent. */
function edit(edits: Edit[], text: string, start: number, path: readonly string[], clientId: JsonRpcId) {
  const span = pathSpan(text, start, path);
  if (span === undefined || span === DUPLICATE) return false;
  edits.push({ start: span.start, end: span.end, text: JSON.stringify(clientId) });
  return true;
}

function subscriptionOf(meta: unknown): unknown {
  if (typeof meta !== 'object' || meta === null || !Object.hasOwn(meta, SUBSCRIPTION_ID)) return undefined;
  return (meta as Record<string, unknown>)[SUBSCRIPTION_ID];
}

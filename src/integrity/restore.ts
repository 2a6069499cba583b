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
 * pass). Requests from the upstream (sampling, elicitation, roots, ping) pass untouched.
 */
import type { JsonRpcId, JsonRpcMessage } from '../jsonrpc/message.ts';
import { applyEdits, DUPLICATE, messageStarts, pathSpan } from './json-spans.ts';
import type { Edit } from './json-spans.ts';
import type { PendingTags } from './cancels.ts';
import { TAG_PREFIX } from './request-tag.ts';
import type { Plan, RequestTagger, Untagged } from './request-tag.ts';

export const SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';
const CANCELLED = 'notifications/cancelled';

/** What the requests forwarded in one exchange were tagged with. */
export interface ForwardedRequests {
  /** The bytes to forward: the judged bytes with each request id replaced by its tag. */
  readonly bytes: Buffer;
  /** Tag → the client's id and the plan, for each request forwarded. */
  readonly tags: ReadonlyMap<string, Untagged>;
}

export interface TagContext {
  readonly tagger: RequestTagger;
  readonly bindingId: string;
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
  const tags = new Map<string, Untagged>();
  let text: string | undefined;
  let starts: number[] | undefined;
  const edits: Edit[] = [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as { id?: JsonRpcId; method?: string; params?: Record<string, unknown> };
    let path: readonly string[];
    let replacement: string;
    if (m.method !== undefined && m.id !== undefined) {
      const plan = plans?.get(m.id) ?? 'none';
      const tag = context.tagger.tag(context.bindingId, m.id, plan);
      tags.set(tag, { clientId: m.id, plan });
      context.pending?.remember(pendingKey(context, m.id), tag);
      path = ['id'];
      replacement = tag;
    } else if (m.method === CANCELLED && isId(m.params?.requestId)) {
      const clientId = m.params.requestId;
      path = ['params', 'requestId'];
      replacement =
        context.pending?.tagFor(pendingKey(context, clientId)) ??
        context.tagger.tag(context.bindingId, clientId, 'none');
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

function pendingKey(context: TagContext, clientId: JsonRpcId) {
  return { bindingId: context.bindingId, sessionId: context.sessionId, clientId };
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
}

/** The text with the client's ids back, and the plan of each response it holds. */
export interface Restored {
  readonly text: string;
  /** Client id → plan, for responses whose plan is not 'none'. */
  readonly plans: Map<JsonRpcId, Exclude<Plan, 'none'>> | undefined;
}

/**
 * Restores the client's ids in `text`, whose JSON.parse is `value` (one message or a batch).
 * Returns undefined when any message in it must not reach the client.
 */
export function restoreIds(text: string, value: unknown, ids: ResponseIds): Restored | undefined {
  const items: unknown[] = Array.isArray(value) ? value : [value];
  if (items.length === 0) return undefined;
  let starts: number[] | undefined;
  const edits: Edit[] = [];
  let plans: Map<JsonRpcId, Exclude<Plan, 'none'>> | undefined;
  const answered = new Set<JsonRpcId>();
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const m = item as Record<string, unknown>;
    const hasResult = Object.hasOwn(m, 'result');
    const edit = (path: readonly string[], clientId: JsonRpcId): boolean => {
      starts ??= messageStarts(text);
      const span = pathSpan(text, starts[i] as number, path);
      if (span === undefined || span === DUPLICATE) return false;
      edits.push({ start: span.start, end: span.end, text: JSON.stringify(clientId) });
      return true;
    };
    if (Object.hasOwn(m, 'method')) {
      if (hasResult || Object.hasOwn(m, 'error')) return undefined;
      if (Object.hasOwn(m, 'id')) continue; // a request from the upstream: its id is its own
      const params = m.params;
      if (typeof params !== 'object' || params === null) continue;
      const p = params as Record<string, unknown>;
      const requestId = p.requestId;
      if (typeof requestId === 'string') {
        const named = ids.name(requestId);
        if (named !== undefined) {
          if (!edit(['params', 'requestId'], named.clientId)) return undefined;
        } else if (requestId.startsWith(TAG_PREFIX)) {
          // A tag this exchange cannot translate: the client never sees a gateway id.
          return undefined;
        }
      }
      const subscription = subscriptionOf(p._meta);
      if (subscription !== undefined) {
        const named = typeof subscription === 'string' ? ids.name(subscription) : undefined;
        if (named === undefined || !edit(['params', '_meta', SUBSCRIPTION_ID], named.clientId))
          return undefined;
      }
      continue;
    }
    const id = m.id;
    if (id === null || id === undefined) {
      // An error that names no request (the upstream could not read one) passes; a result does not.
      if (hasResult || !Object.hasOwn(m, 'error')) return undefined;
      continue;
    }
    const untagged = typeof id === 'string' ? ids.answer(id) : undefined;
    if (untagged === undefined || answered.has(untagged.clientId)) return undefined;
    answered.add(untagged.clientId);
    if (!edit(['id'], untagged.clientId)) return undefined;
    if (hasResult && typeof m.result === 'object' && m.result !== null) {
      const subscription = subscriptionOf((m.result as Record<string, unknown>)._meta);
      if (subscription !== undefined) {
        if (subscription !== id || !edit(['result', '_meta', SUBSCRIPTION_ID], untagged.clientId))
          return undefined;
      }
    }
    if (untagged.plan !== 'none') (plans ??= new Map()).set(untagged.clientId, untagged.plan);
  }
  return { text: applyEdits(text, edits), plans };
}

function subscriptionOf(meta: unknown): unknown {
  if (typeof meta !== 'object' || meta === null || !Object.hasOwn(meta, SUBSCRIPTION_ID)) return undefined;
  return (meta as Record<string, unknown>)[SUBSCRIPTION_ID];
}

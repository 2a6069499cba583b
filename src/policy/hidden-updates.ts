/**
 * Notifications that name a resource the key may not use never reach it. The one the protocol
 * defines is `notifications/resources/updated` (its `params.uri`): an upstream sends it for a
 * subscription, and the key's subscription may be older than its allowlist (a 2025 session's
 * `resources/subscribe` outlives a reload that narrowed the key: the subscription is the upstream's
 * state), or the upstream may send it for resources nobody subscribed to. Either would show the key
 * the name of a resource its lists hide, and when it changes. Such an event is dropped from the
 * stream (its id is kept: see sse-rewrite.ts DROP; in a batch, only the update goes),
 * and a JSON body holding one is refused, as a response to nothing would be.
 *
 * The URI is judged as `resources/read` judges one (policy/judge.ts: a well-formed name the key's
 * resources allow; under ALLOW_ALL every URI passes, as every read does). A key in `params` that a
 * client's decoder reads as `uri` without being it (`URI`, `Uri`: case-variants.ts) names a resource
 * the gateway cannot judge: the update is dropped. A message whose `uri` is not a string names no
 * resource and passes, as before. A repeated `method`, `params` or `uri` is refused by the response
 * matching (integrity/restore.ts), as a first-wins client would read another.
 */
import type { Grants } from './grants.ts';
import { ALLOW_ALL } from './grants.ts';
import { isName, resourceAllowed } from './judge.ts';
import { caseVariant, memberNames } from './case-variants.ts';
import { messageStarts, skipValue } from '../integrity/json-spans.ts';

const UPDATED = 'notifications/resources/updated';

/** The member of an update's params the gateway judges. */
export const UPDATE_PARAMS = memberNames(['uri']);

/** Whether `value` (a message, or a batch of them) holds an update of a resource `grants` hide. */
export function hidesUpdate(value: unknown, grants: Grants): boolean {
  if (grants === ALLOW_ALL) return false;
  if (!Array.isArray(value)) return hiddenUpdate(value, grants);
  for (const item of value) if (hiddenUpdate(item, grants)) return true;
  return false;
}

/**
 * `text` (whose JSON.parse is the batch `value`) without the updates `grants` hide, its other
 * messages as they are written; undefined when nothing else is left.
 */
export function withoutHiddenUpdates(
  text: string,
  value: readonly unknown[],
  grants: Grants,
): string | undefined {
  const starts = messageStarts(text);
  const kept: string[] = [];
  for (let i = 0; i < value.length; i++) {
    if (hiddenUpdate(value[i], grants)) continue;
    const start = starts[i] as number;
    kept.push(text.slice(start, skipValue(text, start)));
  }
  return kept.length === 0 ? undefined : `[${kept.join(',')}]`;
}

function hiddenUpdate(message: unknown, grants: Grants): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { method?: unknown; params?: unknown };
  if (m.method !== UPDATED || typeof m.params !== 'object' || m.params === null) return false;
  if (caseVariant(m.params, UPDATE_PARAMS) !== undefined) return true;
  const uri = (m.params as { uri?: unknown }).uri;
  return typeof uri === 'string' && !(isName(uri) && resourceAllowed(grants, uri));
}

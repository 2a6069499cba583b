/**
 * Notifications that name a resource the key may not use never reach it. The one the protocol
 * defines is `notifications/resources/updated` (its `params.uri`): an upstream sends it for a
 * subscription, and the key's subscription may be older than its allowlist (a 2025 session's
 * `resources/subscribe` outlives a reload that narrowed the key: the subscription is the upstream's
 * state), or the upstream may send it for resources nobody subscribed to. Either would show the key
 * the name of a resource its lists hide, and when it changes. Such an event is dropped from the
 * stream (an id it carries still moves the client's resume point), and a JSON body holding one is
 * refused, as a response to nothing would be.
 *
 * The URI is judged as `resources/read` judges one (policy/judge.ts resourceAllowed). A message
 * whose `uri` is not a string names no resource and passes, as before.
 */
import type { Grants } from './grants.ts';
import { resourceAllowed } from './judge.ts';

const UPDATED = 'notifications/resources/updated';

/** Whether `value` (a message, or a batch of them) holds an update of a resource `grants` hide. */
export function hidesUpdate(value: unknown, grants: Grants): boolean {
  if (!Array.isArray(value)) return hiddenUpdate(value, grants);
  for (const item of value) if (hiddenUpdate(item, grants)) return true;
  return false;
}

function hiddenUpdate(message: unknown, grants: Grants): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { method?: unknown; params?: unknown };
  if (m.method !== UPDATED || typeof m.params !== 'object' || m.params === null) return false;
  const uri = (m.params as { uri?: unknown }).uri;
  return typeof uri === 'string' && !resourceAllowed(grants, uri);
}

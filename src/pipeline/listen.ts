/**
 * A 2026-07-28 `subscriptions/listen` request opens the client's notification stream: an answer
 * that lasts as long as the client keeps it, like a GET stream of the earlier revisions. The handler
 * holds it as one (stream pool, max_streams, reload, expiry); metrics do not time it.
 */
import type { RequestContext } from './context.ts';

/** The POST's one message is a `subscriptions/listen` (not in a batch). */
export function isListen(ctx: RequestContext): boolean {
  const messages = ctx.messages;
  return (
    !ctx.batch &&
    messages !== undefined &&
    messages.length === 1 &&
    (messages[0] as { method?: unknown }).method === 'subscriptions/listen'
  );
}

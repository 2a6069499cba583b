/**
 * A 2026-07-28 `subscriptions/listen` request opens the client's notification stream: an answer
 * that lasts as long as the client keeps it, like a GET stream of the earlier revisions. The handler
 * holds it as one (stream pool, max_streams, reload, expiry); metrics do not time it.
 */
import type { RequestContext } from './context.ts';
import { GatewayError } from '../jsonrpc/errors.ts';

const LISTEN = 'subscriptions/listen';

/** The POST's one message is a `subscriptions/listen` (not in a batch). */
export function isListen(ctx: RequestContext): boolean {
  const messages = ctx.messages;
  return (
    !ctx.batch &&
    messages !== undefined &&
    messages.length === 1 &&
    (messages[0] as { method?: unknown }).method === LISTEN
  );
}

/**
 * Whether the POST opens a listen stream; a batch holding a listen is refused (-32600): the revision
 * that defines the method has no batches, and a stream inside one would be held as no stream.
 */
export function opensListen(ctx: RequestContext): boolean {
  if (!ctx.batch) return isListen(ctx);
  for (const m of ctx.messages ?? []) {
    if ((m as { method?: unknown }).method === LISTEN) {
      ctx.reason = 'ERR_INVALID_REQUEST';
      throw new GatewayError('ERR_INVALID_REQUEST', {
        message: 'invalid request: subscriptions/listen cannot be sent in a batch',
      });
    }
  }
  return false;
}

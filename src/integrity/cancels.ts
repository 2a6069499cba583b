/**
 * Which tag the gateway used for a client's request id, so that a client's
 * `notifications/cancelled` names the request the upstream knows (its `requestId` is the tag, never
 * the client's id). Tags are fresh per request (a nonce), so this cannot be recomputed: it is a
 * per-process map, bounded (the oldest entry goes first) and scoped by principal and upstream
 * session. An entry is forgotten when the request's response passes.
 *
 * Trade-off (documented in the README): a cancellation that reaches another replica than the one
 * that forwarded the request, or arrives after MAX_PENDING newer requests, finds no entry; it is then
 * forwarded naming a fresh tag no request has, which the upstream ignores, as the protocol lets a
 * receiver ignore a cancellation of a request it does not know. The request runs to its end; its
 * response is still matched and passed.
 */
import type { JsonRpcId } from '../jsonrpc/message.ts';

/** Requests remembered at most (about 200 bytes each). */
export const MAX_PENDING = 10_000;

export interface PendingKey {
  readonly bindingId: string;
  /** The upstream's session id, when the request belongs to a session. */
  readonly sessionId: string | undefined;
  readonly clientId: JsonRpcId;
}

export class PendingTags {
  readonly #tags = new Map<string, string>();
  readonly #max: number;

  constructor(max: number = MAX_PENDING) {
    if (!Number.isInteger(max) || max <= 0)
      throw new TypeError('PendingTags: max must be a positive integer');
    this.#max = max;
  }

  get size(): number {
    return this.#tags.size;
  }

  remember(key: PendingKey, tag: string): void {
    const k = keyOf(key);
    this.#tags.delete(k);
    this.#tags.set(k, tag);
    if (this.#tags.size > this.#max) this.#tags.delete(this.#tags.keys().next().value as string);
  }

  /** The tag the request with this key was forwarded under, if it is still pending here. */
  tagFor(key: PendingKey): string | undefined {
    return this.#tags.get(keyOf(key));
  }

  /** The request was answered (only when `tag` is still the one remembered for its key). */
  forget(key: PendingKey, tag: string): void {
    const k = keyOf(key);
    if (this.#tags.get(k) === tag) this.#tags.delete(k);
  }
}

function keyOf(key: PendingKey): string {
  const id = typeof key.clientId === 'number' ? `n${key.clientId}` : `s${key.clientId}`;
  return `${key.bindingId}\n${key.sessionId ?? ''}\n${id}`;
}

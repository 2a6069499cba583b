/**
 * The gateway seals each SSE event id for the key whose stream carries it (src/integrity/event-ids.ts):
 * tests that compare a stream's bytes, or resume one with Last-Event-ID, seal the upstream's ids as
 * the gateway does, from the config's session secret and the key.
 */
import { createEventIds } from '../../src/integrity/event-ids.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';

/** The id a client of `key` sees for the upstream's event `id` (auth.session_secret `secret`). */
export function sealerFor(secret: string, key: string): (id: string) => string {
  const ids = createEventIds(Buffer.from(secret, 'utf8'));
  const bindingId = `k:${sha256Hex(key)}`;
  return (id) => ids.seal(bindingId, id);
}

/**
 * Sealed SSE event ids. An upstream's event ids name points in its event log, and an upstream that
 * replays by event id alone (one log for every session, as an event store shared across sessions
 * does) replays whatever follows that point to whoever presents it: another key's notifications and
 * server requests (elicitations, sampling), which carry no request tag the response matching could
 * refuse. So the client never sees the upstream's id: each `id:` field on a stream the gateway
 * relays is sealed for the principal the stream belongs to,
 *
 *   sealed = upstream id + "." + base64url(HMAC-SHA256(k, bindingId "\n" upstream id)[0..12])
 *
 * and a `Last-Event-ID` is forwarded only as the upstream id inside a seal made for the principal
 * that presents it (compared in constant time); any other is refused before the upstream. k =
 * HMAC-SHA256(session secret, LABEL), so replicas that share `auth.session_secret` open each
 * other's seals, and a seal is never a request tag or a session id.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createBindingMac } from './hmac.ts';

const LABEL = 'mcpgate event id v1';
const MAC_BYTES = 12;
/** base64url of 12 bytes, and the dot before it. */
const MAC_CHARS = 16;
const SEAL_CHARS = MAC_CHARS + 1;

export interface EventIds {
  /** The id the client sees for the upstream's `id` on a stream of `bindingId`. */
  seal(bindingId: string, id: string): string;
  /** The upstream's id in a `Last-Event-ID` sealed for `bindingId`; undefined for any other. */
  open(bindingId: string, presented: string): string | undefined;
}

/** @param secret the session secret (at least 32 bytes). */
export function createEventIds(secret: Buffer): EventIds {
  if (!Buffer.isBuffer(secret) || secret.length < 32)
    throw new TypeError('the event id secret must be at least 32 bytes');
  const mac = createBindingMac(createHmac('sha256', secret).update(LABEL).digest(), MAC_BYTES);
  // The compared MACs as UTF-16 (lossless for any string), written, never allocated, per open.
  const expected = Buffer.alloc(MAC_CHARS * 2);
  const given = Buffer.alloc(MAC_CHARS * 2);
  return {
    seal(bindingId, id) {
      return `${id}.${mac(bindingId, id)}`;
    },
    open(bindingId, presented) {
      const dot = presented.length - SEAL_CHARS;
      if (dot < 0 || presented.charCodeAt(dot) !== 0x2e) return undefined;
      const id = presented.slice(0, dot);
      expected.write(mac(bindingId, id), 'utf16le');
      given.write(presented.slice(dot + 1), 'utf16le');
      return timingSafeEqual(given, expected) ? id : undefined;
    },
  };
}

/**
 * Binds MCP sessions to the principal that opened them, without shared state: the id the client
 * sees is the upstream's id plus a MAC of (principal, upstream id) under a secret every replica
 * shares, so it survives restarts and works on any replica. A session id stolen from one key is
 * useless with another, and a tampered or forged id never reaches the upstream.
 *
 *   client id = upstream id + "." + base64url(HMAC-SHA256(k, bindingId + "\n" + upstream id)[0..16])
 *
 * k is derived from the configured secret with a fixed label, so the same secret can key other
 * bindings without one MAC being replayable as another. Upstream ids are visible ASCII (no "\n"),
 * so the MAC input splits one way only.
 */
import { createHash, createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../jsonrpc/errors.ts';
import { isVisibleAscii } from './key-format.ts';

export const MIN_SESSION_SECRET_BYTES = 32;
/** Longest upstream session id accepted (they are usually UUIDs). */
export const MAX_UPSTREAM_SESSION_ID = 512;
const MAC_BYTES = 16;
const MAC_CHARS = 22; // base64url of 16 bytes, unpadded
const LABEL = 'mcpgate session binding v1';

export interface SessionBinder {
  /** The id to give the client for an upstream id; throws ERR_UPSTREAM_PROTOCOL for an invalid one. */
  wrap(upstreamSessionId: string, bindingId: string): string;
  /** The upstream id, or undefined when the id is malformed, tampered with or bound to someone else. */
  unwrap(clientSessionId: string, bindingId: string): string | undefined;
}

/**
 * @param label separates bindings keyed by one secret (the HTTP+SSE transport's endpoint sessions use
 *   their own), so an id signed for one is never accepted as the other.
 */
export function createSessionBinder(secret: Buffer, label: string = LABEL): SessionBinder {
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SESSION_SECRET_BYTES) {
    throw new TypeError(`the session secret must be at least ${MIN_SESSION_SECRET_BYTES} bytes`);
  }
  // A KeyObject made once: createHmac with a raw Buffer would re-import the key on every call.
  const key = createSecretKey(createHmac('sha256', secret).update(label).digest());

  function mac(bindingId: string, upstreamId: string): string {
    const full = createHmac('sha256', key).update(bindingId).update('\n').update(upstreamId).digest();
    return full.subarray(0, MAC_BYTES).toString('base64url');
  }

  return {
    wrap(upstreamSessionId, bindingId) {
      const n = upstreamSessionId.length;
      if (n === 0 || n > MAX_UPSTREAM_SESSION_ID || !isVisibleAscii(upstreamSessionId)) {
        throw new GatewayError('ERR_UPSTREAM_PROTOCOL');
      }
      return `${upstreamSessionId}.${mac(bindingId, upstreamSessionId)}`;
    },
    unwrap(clientSessionId, bindingId) {
      const n = clientSessionId.length;
      if (n < MAC_CHARS + 2 || n > MAX_UPSTREAM_SESSION_ID + 1 + MAC_CHARS) return undefined;
      const dot = n - MAC_CHARS - 1;
      if (clientSessionId.charCodeAt(dot) !== 0x2e || !isVisibleAscii(clientSessionId)) return undefined;
      const upstreamId = clientSessionId.slice(0, dot);
      // Compare the text, not decoded bytes: base64url has several spellings of the last character.
      const expected = Buffer.from(mac(bindingId, upstreamId), 'latin1');
      const given = Buffer.from(clientSessionId.slice(dot + 1), 'latin1');
      return timingSafeEqual(given, expected) ? upstreamId : undefined;
    },
  };
}

/** The secret from `auth.session_secret` (UTF-8), or a random one (sessions then die with the process). */
export function sessionSecret(configured: string | undefined, random: (n: number) => Buffer): Buffer {
  return configured === undefined ? random(MIN_SESSION_SECRET_BYTES) : Buffer.from(configured, 'utf8');
}

/** A short, non-reversible tag of a session id for the audit log (never the id itself). */
export function sessionTag(clientSessionId: string): string {
  return createHash('sha256').update(clientSessionId).digest('hex').slice(0, 12);
}

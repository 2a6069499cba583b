/**
 * The configured API keys, indexed once at start by the SHA-256 of the key. Authenticating is one
 * checksum test (for `mcpg_` keys), one hash, one map lookup and one constant-time compare; the
 * Principal of each key is built here, once, and returned as is.
 *
 * The digest is taken as a latin1 string (one character per byte) and the map is keyed by it:
 * `crypto.hash` with a string encoding is about a fifth of the cost of asking it for a Buffer (whose
 * output encoding takes a slow path and a new backing store) and then writing that Buffer as hex.
 * The compare runs on the digest written into one scratch buffer.
 */
import crypto from 'node:crypto';
import type { Limits } from '../ratelimit/policy.ts';
import type { KeyConfig } from '../config/schema.ts';
import { parseExpiry } from '../config/checks.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import type { Grants } from '../policy/grants.ts';
import type { Principal } from './principal.ts';
import { parseKeyHash } from './key-hash.ts';
import { MAX_KEY_LENGTH, hasValidChecksum, looksLikeMintedKey } from './key-format.ts';

export type AuthResult =
  | { readonly ok: true; readonly principal: Principal }
  /** `principal`: who was refused, when the credential was valid but not enough (for the audit line). */
  | { readonly ok: false; readonly code: ErrorCode; readonly principal?: Principal };

export interface KeyringOptions {
  /** Wall clock in ms since the epoch, for `expires`. */
  readonly now: () => number;
  /** Rate-limit identity and buckets of a key, resolved once here. */
  readonly resolveLimits?: (key: KeyConfig) => Limits | undefined;
}

export interface Keyring {
  readonly size: number;
  authenticate(secret: string): AuthResult;
}

interface Entry {
  readonly digest: Buffer;
  readonly disabled: boolean;
  /** ms since the epoch; Infinity when the key does not expire. */
  readonly expiresAt: number;
  readonly accepted: AuthResult;
}

const refuse = (code: ErrorCode): AuthResult => Object.freeze({ ok: false as const, code });
const EMPTY = refuse('ERR_AUTH_EMPTY');
const MALFORMED = refuse('ERR_AUTH_MALFORMED');
const UNKNOWN = refuse('ERR_AUTH_UNKNOWN_KEY');
const DISABLED = refuse('ERR_AUTH_KEY_DISABLED');
const EXPIRED = refuse('ERR_AUTH_KEY_EXPIRED');

/**
 * Throws TypeError for a config that did not pass validation (bad hash or date, duplicate hash):
 * the gateway must not start with a key it cannot judge.
 */
export function createKeyring(
  keys: readonly KeyConfig[],
  compileGrants: (key: KeyConfig) => Grants,
  options: KeyringOptions,
): Keyring {
  const { now, resolveLimits } = options;
  /** Keyed by the digest's bytes as a latin1 string. */
  const byDigest = new Map<string, Entry>();
  /** The presented key's digest, written here for the constant-time compare (authenticate is synchronous). */
  const scratch = Buffer.alloc(32);
  keys.forEach((key, i) => {
    const hex = parseKeyHash(key.hash);
    if (hex === undefined) throw new TypeError(`keys[${i}].hash: not a sha256 hash`);
    const digest = Buffer.from(hex, 'hex');
    const id = digest.toString('latin1');
    if (byDigest.has(id)) throw new TypeError(`keys[${i}].hash: duplicate hash`);
    let expiresAt = Infinity;
    if (key.expires !== undefined) {
      const when = parseExpiry(key.expires);
      if (when === undefined) throw new TypeError(`keys[${i}].expires: not an ISO 8601 date or time`);
      expiresAt = when;
    }
    const principal: Principal = Object.freeze({
      kind: 'key' as const,
      name: key.label,
      keyId: hex.slice(0, 8),
      bindingId: `k:${hex}`,
      grants: compileGrants(key),
      limits: resolveLimits?.(key),
      expiresAt: expiresAt === Infinity ? undefined : expiresAt,
    });
    const entry: Entry = {
      digest,
      disabled: key.disabled,
      expiresAt,
      accepted: Object.freeze({ ok: true as const, principal }),
    };
    byDigest.set(id, entry);
  });

  function authenticate(secret: string): AuthResult {
    if (secret.length === 0) return EMPTY;
    if (secret.length > MAX_KEY_LENGTH) return MALFORMED;
    // A mistyped or truncated mcpgate key is told apart from a wrong one without a lookup.
    if (looksLikeMintedKey(secret) && !hasValidChecksum(secret)) return MALFORMED;
    // One-shot hash: no Hash object, and no Buffer, per request ('binary' is latin1).
    const digest = crypto.hash('sha256', secret, 'binary');
    const entry = byDigest.get(digest);
    if (entry === undefined) return UNKNOWN;
    // The map finds the candidate; the answer rests on a constant-time compare of the digests.
    scratch.write(digest, 0, 'latin1');
    if (!crypto.timingSafeEqual(scratch, entry.digest)) return UNKNOWN;
    if (entry.disabled) return DISABLED;
    if (entry.expiresAt !== Infinity && now() >= entry.expiresAt) return EXPIRED;
    return entry.accepted;
  }

  return { size: byDigest.size, authenticate };
}

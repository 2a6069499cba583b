/**
 * The configured API keys, indexed once at start by the SHA-256 of the key. Authenticating is one
 * checksum test (for `mcpg_` keys), one hash, one map lookup and one constant-time compare; the
 * Principal of each key is built here, once, and returned as is.
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
  { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly code: ErrorCode };

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
  const byHash = new Map<string, Entry>();
  keys.forEach((key, i) => {
    const hex = parseKeyHash(key.hash);
    if (hex === undefined) throw new TypeError(`keys[${i}].hash: not a sha256 hash`);
    if (byHash.has(hex)) throw new TypeError(`keys[${i}].hash: duplicate hash`);
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
    });
    byHash.set(hex, {
      digest: Buffer.from(hex, 'hex'),
      disabled: key.disabled,
      expiresAt,
      accepted: Object.freeze({ ok: true as const, principal }),
    });
  });

  function authenticate(secret: string): AuthResult {
    if (secret.length === 0) return EMPTY;
    if (secret.length > MAX_KEY_LENGTH) return MALFORMED;
    // A mistyped or truncated mcpgate key is told apart from a wrong one without a lookup.
    if (looksLikeMintedKey(secret) && !hasValidChecksum(secret)) return MALFORMED;
    // One-shot hash: no Hash object per request.
    const digest = crypto.hash('sha256', secret, 'buffer');
    const entry = byHash.get(digest.toString('hex'));
    // The map finds the candidate; the answer rests on a constant-time compare of the digests.
    if (entry === undefined || !crypto.timingSafeEqual(digest, entry.digest)) return UNKNOWN;
    if (entry.disabled) return DISABLED;
    if (entry.expiresAt !== Infinity && now() >= entry.expiresAt) return EXPIRED;
    return entry.accepted;
  }

  return { size: byHash.size, authenticate };
}

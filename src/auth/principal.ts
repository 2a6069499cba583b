/** Who made a request, once authenticated: an API key or an OAuth subject. */
import type { Grants } from '../policy/grants.ts';
import type { Limits } from '../ratelimit/policy.ts';

export interface Principal {
  readonly kind: 'key' | 'oauth' | 'anonymous';
  /** The key's label, or the token's subject. */
  readonly name: string;
  /** A short prefix of the key's hash (never the key), or undefined for OAuth. */
  readonly keyId: string | undefined;
  /** Stable identity sessions and tasks are bound to (key hash, or issuer + subject). */
  readonly bindingId: string;
  /** What this principal may use. */
  readonly grants: Grants;
  /** Rate-limit identity and buckets (compiled once per key at start); none when unauthenticated. */
  readonly limits: Limits | undefined;
  /** OAuth: the token's `client_id` (or `azp`), for the audit line. */
  readonly clientId?: string | undefined;
  /** OAuth: the name of the grant that matched (none when no grant matched). */
  readonly grant?: string | undefined;
  /**
   * When the credential stops being valid (ms since the epoch): a key's `expires`, a token's `exp`.
   * Undefined when it never does. A stream the principal holds open ends then (stream-expiry.ts).
   */
  readonly expiresAt?: number | undefined;
}

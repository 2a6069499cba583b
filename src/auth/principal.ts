/** Who made a request, once authenticated: an API key or an OAuth subject. */
import type { Grants } from '../policy/grants.ts';

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
  /** Rate-limit identity and buckets (resolved once per key at start). */
  readonly limits: unknown;
}

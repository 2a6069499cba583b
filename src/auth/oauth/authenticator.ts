/**
 * OAuth 2.1 resource server: a bearer JWT is verified (verify.ts, keys.ts), checked for
 * `required_scopes`, and matched to the first claim grant; the result is a Principal identified by
 * `iss` + `sub`.
 *
 * The resource server is built once at start (`auth.oauth` needs a restart: its key source, metadata
 * routes and claim grants live across reloads). What a reload may change for tokens, the default
 * rate limits (`rate_limit.capacity`, `refill_per_second`, `max_streams`), is given to `tokens()`,
 * which each config generation calls for an authenticator of its own: a token's principal takes
 * the running generation's limits, never the ones the gateway started with.
 *
 * Verified tokens are remembered by their SHA-256 (never the token itself) until the earlier of
 * their `exp` and TOKEN_CACHE_MS, so a client's requests after its first skip the signature check.
 * Each authenticator has its own memory, so a reload starts afresh. A JWT cannot be revoked at a
 * resource server that does not ask the authorization server anyway (no introspection); the cache
 * only means that a key removed from the JWK set stops validating the tokens it signed up to
 * TOKEN_CACHE_MS later. Refusals are never cached. That bound is measured on the monotonic clock
 * (`exp` on the wall clock, as verification reads it): timed by the wall clock, a step back (NTP
 * correcting a fast clock) kept a token remembered for as long as the step, its removed key with it.
 */
import { hash } from 'node:crypto';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log/types.ts';
import type { AuthResult } from '../keyring.ts';
import type { Principal } from '../principal.ts';
import type { ErrorCode } from '../../jsonrpc/errors.ts';
import { compileLimits } from '../../ratelimit/policy.ts';
import type { LimitDefaults } from '../../ratelimit/policy.ts';
import { createKeySource } from './keys.ts';
import type { JwksStatus, KeySourceOptions } from './keys.ts';
import { createVerifier } from './verify.ts';
import { compileClaimGrants, matchGrant, NO_GRANTS, scopesOf } from './claim-grants.ts';
import { createChallenges, createResourceMetadata } from './metadata.ts';
import type { Challenges, PreflightRoute } from './metadata.ts';

export const TOKEN_CACHE_MS = 30_000;
export const TOKEN_CACHE_ENTRIES = 10_000;
/** Longest bearer token read when OAuth is on (JWTs with many claims run to a few KiB). */
export const MAX_TOKEN_LENGTH = 8192;

/** Token authentication for one config generation (see `OAuth.tokens`). */
export interface TokenAuthentication {
  authenticate(token: string): AuthResult | Promise<AuthResult>;
  readonly challenges: Challenges;
}

export interface OAuth {
  /**
   * An authenticator whose principals take their default rate limits from `rateLimit`: the
   * running config's, so each generation (start, every reload) asks for its own.
   */
  tokens(rateLimit: LimitDefaults): TokenAuthentication;
  readonly challenges: Challenges;
  /** The protected-resource metadata routes (reserved paths). */
  readonly routes: ReadonlyMap<string, PreflightRoute>;
  readonly metadataUrl: string;
  status(): { readonly jwks: JwksStatus };
  /** Resolves true once signing keys are loaded, or false after `ms`. */
  ready(ms: number): Promise<boolean>;
  close(): void;
}

export interface OAuthDeps {
  /** Wall clock, ms since the epoch: `exp`, `nbf`, `iat` (a remembered token's `exp` too). */
  readonly now: () => number;
  /** Monotonic ms: the key source's failure cooldown and how long a verified token is remembered. */
  readonly mono: () => number;
  readonly log: Logger;
  /** Shorter key-fetch timings (tests); the defaults are in keys.ts. */
  readonly tuning?: OAuthTuning;
}

export type OAuthTuning = Partial<
  Pick<KeySourceOptions, 'timeoutMs' | 'refreshMs' | 'cooldownMs' | 'failureCooldownMs'>
>;

const INSUFFICIENT_SCOPE: ErrorCode = 'ERR_INSUFFICIENT_SCOPE';

/** Returns undefined when `auth.oauth` is not configured. */
export function createOAuth(config: Config, deps: OAuthDeps): OAuth | undefined {
  const oauth = config.auth.oauth;
  if (oauth === undefined) return undefined;
  const publicUrl = config.public_url;
  if (publicUrl === undefined) throw new TypeError('auth.oauth needs public_url');
  const { now, mono } = deps;
  const keys = createKeySource({
    issuer: oauth.issuer,
    jwksUri: oauth.jwks_uri,
    log: deps.log,
    mono: deps.mono,
    ...deps.tuning,
  });
  const verify = createVerifier({
    getKey: keys.getKey,
    issuer: oauth.issuer,
    audience: oauth.audience ?? publicUrl,
    algorithms: oauth.algorithms,
    clockToleranceMs: oauth.clock_tolerance,
    now,
  });
  const grants = compileClaimGrants(oauth.grants);
  const required = oauth.required_scopes;
  const metadata = createResourceMetadata(publicUrl, new URL(config.upstream.url).pathname, oauth);
  const challenges = createChallenges(metadata.url, required);

  function tokens(rateLimit: LimitDefaults): TokenAuthentication {
    /** `exp`: wall ms; `fresh`: monotonic ms (TOKEN_CACHE_MS after it was verified). */
    const cache = new Map<
      string,
      { readonly result: AuthResult; readonly exp: number; readonly fresh: number }
    >();

    function accept(payload: Awaited<ReturnType<typeof verify>> & { ok: true }): AuthResult {
      const claims = payload.payload;
      const identity = `${claims.iss} ${claims.sub}`;
      const clientId = text(claims.client_id) ?? text(claims.azp);
      if (required.length > 0) {
        const scopes = scopesOf(claims);
        for (const scope of required)
          if (!scopes.includes(scope)) {
            // Refused (403), with who was refused for the audit line: no grants, no limits.
            const refused: Principal = Object.freeze({
              kind: 'oauth' as const,
              name: claims.sub,
              keyId: undefined,
              bindingId: `o:${identity}`,
              grants: NO_GRANTS,
              limits: undefined,
              clientId,
              grant: undefined,
            });
            return Object.freeze({ ok: false as const, code: INSUFFICIENT_SCOPE, principal: refused });
          }
      }
      const grant = matchGrant(grants, claims);
      const principal: Principal = Object.freeze({
        kind: 'oauth' as const,
        name: claims.sub,
        keyId: undefined,
        bindingId: `o:${identity}`,
        grants: grant?.grants ?? NO_GRANTS,
        // A grant with limits of its own has buckets of its own: a subject may hold tokens of several.
        limits: compileLimits(
          `oauth:${identity}`,
          rateLimit,
          grant?.config.rate_limit,
          grant?.config.rate_limit === undefined ? undefined : grant.name,
        ),
        clientId,
        grant: grant?.name,
        // When the same token would be refused: `exp` (verify.ts requires it) plus the tolerance.
        expiresAt: (claims.exp as number) * 1000 + oauth.clock_tolerance,
      });
      return Object.freeze({ ok: true as const, principal });
    }

    function authenticate(token: string): AuthResult | Promise<AuthResult> {
      const digest = hash('sha256', token, 'base64');
      const hit = cache.get(digest);
      if (hit !== undefined) {
        if (now() < hit.exp && mono() < hit.fresh) return hit.result;
        cache.delete(digest);
      }
      return verify(token).then((verified) => {
        if (!verified.ok) return verified;
        const result = accept(verified);
        if (result.ok) {
          const exp = (verified.payload.exp as number) * 1000;
          if (cache.size >= TOKEN_CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
          cache.set(digest, { result, exp, fresh: mono() + TOKEN_CACHE_MS });
        }
        return result;
      });
    }

    return { authenticate, challenges };
  }

  return {
    tokens,
    challenges,
    routes: metadata.routes,
    metadataUrl: metadata.url,
    status: () => ({ jwks: keys.status() }),
    ready: (ms) => keys.ready(ms),
    close: () => keys.close(),
  };
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

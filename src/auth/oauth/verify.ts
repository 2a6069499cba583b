/**
 * One bearer JWT checked with jose's jwtVerify: signature by a key of the authorization server's JWK
 * set, an allowed asymmetric algorithm, `iss`, `aud` (RFC 8707), `exp` (required), `nbf`, `iat` not
 * in the future, `sub` present, and `typ` (when present) an access-token type. Every failure maps
 * to one error code from a closed set (the audit reason and the metric label); the client is told
 * only `invalid_token`.
 */
import { errors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import type { ErrorCode } from '../../jsonrpc/errors.ts';
import { KeysUnavailable } from './keys.ts';

export type VerifyResult =
  | { readonly ok: true; readonly payload: JWTPayload & { readonly iss: string; readonly sub: string } }
  | { readonly ok: false; readonly code: ErrorCode };

export interface VerifierOptions {
  readonly getKey: JWTVerifyGetKey;
  readonly issuer: string;
  readonly audience: string;
  readonly algorithms: readonly string[];
  readonly clockToleranceMs: number;
  /** Wall clock, ms since the epoch. */
  readonly now: () => number;
}

/** Header `typ` values of access tokens (RFC 9068 `at+jwt`; many servers write `JWT`). */
const ACCESS_TOKEN_TYPES = new Set(['jwt', 'at+jwt', 'application/at+jwt']);

const fail = (code: ErrorCode): VerifyResult => Object.freeze({ ok: false as const, code });

export function createVerifier(options: VerifierOptions): (token: string) => Promise<VerifyResult> {
  const { getKey, issuer, audience, now } = options;
  const tolerance = options.clockToleranceMs / 1000;
  const algorithms = [...options.algorithms];
  return async function verify(token) {
    try {
      const currentDate = new Date(now());
      const { payload, protectedHeader } = await jwtVerify(token, getKey, {
        issuer,
        audience,
        algorithms,
        clockTolerance: tolerance,
        currentDate,
        requiredClaims: ['exp', 'sub'],
      });
      // jose does not check the type of `typ`: a number or an array is a bad claim, not a TypeError.
      const typ: unknown = protectedHeader.typ;
      if (typ !== undefined && (typeof typ !== 'string' || !ACCESS_TOKEN_TYPES.has(typ.toLowerCase())))
        return fail('ERR_AUTH_TOKEN_CLAIMS');
      if (typeof payload.iat === 'number' && payload.iat > currentDate.getTime() / 1000 + tolerance)
        return fail('ERR_AUTH_TOKEN_NOT_YET_VALID');
      // jose compares `exp` with the time in whole seconds: with a tolerance that is not (`500ms`),
      // or an `exp` that is not, it accepts a token for up to a second past `exp` plus the
      // tolerance, the instant an open stream of it is ended (stream-expiry.ts). Refused from that
      // instant on, as the stream is, a GET or listen then is not forwarded, nor a request.
      if ((payload.exp as number) * 1000 + options.clockToleranceMs <= currentDate.getTime())
        return fail('ERR_AUTH_TOKEN_EXPIRED');
      if (typeof payload.sub !== 'string' || payload.sub === '') return fail('ERR_AUTH_TOKEN_CLAIMS');
      // The subject names its sessions, buckets and tags (bound by HMACs and Redis keys written as
      // UTF-8): a lone surrogate would be written as U+FFFD, so two subjects could share them.
      if (!wellFormed(payload.sub) || !wellFormed(payload.iss as string))
        return fail('ERR_AUTH_TOKEN_CLAIMS');
      return { ok: true, payload: payload as JWTPayload & { iss: string; sub: string } };
    } catch (err) {
      return fail(reasonFor(err));
    }
  };
}

export function reasonFor(err: unknown): ErrorCode {
  if (err instanceof KeysUnavailable) return 'ERR_AUTH_TOKEN_KEYS_UNAVAILABLE';
  if (err instanceof errors.JWTExpired) return 'ERR_AUTH_TOKEN_EXPIRED';
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss':
        return 'ERR_AUTH_TOKEN_ISSUER';
      case 'aud':
        return 'ERR_AUTH_TOKEN_AUDIENCE';
      case 'nbf':
      case 'iat':
        return err.reason === 'check_failed' ? 'ERR_AUTH_TOKEN_NOT_YET_VALID' : 'ERR_AUTH_TOKEN_CLAIMS';
      default:
        return 'ERR_AUTH_TOKEN_CLAIMS';
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'ERR_AUTH_TOKEN_ALGORITHM';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'ERR_AUTH_TOKEN_SIGNATURE';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
    return 'ERR_AUTH_TOKEN_UNKNOWN_KEY';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid)
    return 'ERR_AUTH_TOKEN_KEYS_UNAVAILABLE';
  if (err instanceof errors.JOSENotSupported) return 'ERR_AUTH_TOKEN_ALGORITHM';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'ERR_AUTH_TOKEN_MALFORMED';
  // A JWK set answer that was not 200 (a failed fetch is KeysUnavailable: keys.ts).
  if (err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC')
    return 'ERR_AUTH_TOKEN_KEYS_UNAVAILABLE';
  // The set has the key the token names, but it cannot verify: an RSA key under 2048 bits (jose's
  // TypeError), a JWK WebCrypto will not import (a DOMException). No key the gateway can use, as
  // for a key jose passes over (`use: enc`, another curve); the set itself was fetched.
  if (err instanceof TypeError || err instanceof DOMException) return 'ERR_AUTH_TOKEN_UNKNOWN_KEY';
  return 'ERR_AUTH_TOKEN_MALFORMED';
}

/** ES2024 `String.prototype.isWellFormed` (the project's lib is es2023): no lone surrogate. */
function wellFormed(value: string): boolean {
  return (value as string & { isWellFormed(): boolean }).isWellFormed();
}

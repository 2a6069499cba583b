/**
 * Finds the API key in a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`. Anything
 * ambiguous is refused, each with its own audit reason (all answer the same 401 'unauthorized'):
 *
 *   ERR_AUTH_KEY_IN_QUERY  a key-like query parameter (?key=, ?token= ..., or a key or JWT under any
 *                          name or bare), even beside a good header
 *   ERR_AUTH_MISSING       no credential header
 *   ERR_AUTH_EMPTY         a credential header that is empty, or `Bearer` with no token
 *   ERR_AUTH_DUPLICATE     two Authorization (or X-API-Key) headers, or both with different values
 *   ERR_AUTH_MALFORMED     another scheme, a token with spaces, control or non-ASCII bytes, or too long
 *
 * Node keeps only the first Authorization header and joins repeated X-API-Key headers, so the
 * counting is done on rawHeaders.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import { MAX_KEY_LENGTH, isVisibleAscii } from './key-format.ts';
import { hasCredentialInQueryString } from './query-credential.ts';
import { trimOws } from '../proxy/field-value.ts';

export type CredentialResult =
  | { readonly ok: true; readonly secret: string; readonly scheme: 'bearer' | 'x-api-key' }
  | { readonly ok: false; readonly code: ErrorCode };

export interface ExtractOptions {
  /** Longest accepted credential, checked before anything else (default 512; raise it for JWTs). */
  readonly maxLength?: number;
}

/** Query parameter names that carry credentials elsewhere; compared lower-cased and percent-decoded. */
export const QUERY_CREDENTIAL_NAMES: ReadonlySet<string> = new Set([
  'key',
  'api_key',
  'apikey',
  'api-key',
  'x-api-key',
  'access_token',
  'access-token',
  'accesstoken',
  'id_token',
  'token',
  'jwt',
  'auth',
  'authorization',
  'bearer',
]);

const refuse = (code: ErrorCode): CredentialResult => Object.freeze({ ok: false as const, code });
const IN_QUERY = refuse('ERR_AUTH_KEY_IN_QUERY');
const MISSING = refuse('ERR_AUTH_MISSING');
const EMPTY = refuse('ERR_AUTH_EMPTY');
const DUPLICATE = refuse('ERR_AUTH_DUPLICATE');
const MALFORMED = refuse('ERR_AUTH_MALFORMED');

export function extractCredential(
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
  url: string,
  options: ExtractOptions = {},
): CredentialResult {
  const maxLength = options.maxLength ?? MAX_KEY_LENGTH;
  const q = url.indexOf('?');
  if (q !== -1 && hasCredentialInQuery(url.slice(q + 1))) return IN_QUERY;
  if (headers.authorization === undefined && headers['x-api-key'] === undefined) return MISSING;

  let authorization: string | undefined;
  let apiKey: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 13 && equalsAsciiLower(name, 'authorization')) {
      if (authorization !== undefined) return DUPLICATE;
      authorization = rawHeaders[i + 1] as string;
    } else if (name.length === 9 && equalsAsciiLower(name, 'x-api-key')) {
      if (apiKey !== undefined) return DUPLICATE;
      apiKey = rawHeaders[i + 1] as string;
    }
  }
  // Only reachable when headers and rawHeaders disagree (a caller building them by hand).
  if (authorization === undefined && apiKey === undefined) return MISSING;

  let bearer: string | undefined;
  if (authorization !== undefined) {
    const token = bearerToken(authorization, maxLength);
    if (typeof token !== 'string') return token;
    bearer = token;
  }
  if (apiKey !== undefined) {
    const key = checkToken(trimOws(apiKey), maxLength);
    if (typeof key !== 'string') return key;
    if (bearer !== undefined && bearer !== key) return DUPLICATE;
    if (bearer === undefined) return { ok: true, secret: key, scheme: 'x-api-key' };
  }
  return { ok: true, secret: bearer as string, scheme: 'bearer' };
}

/** The token of `Bearer <token>` (scheme case-insensitive), or why it is refused. */
function bearerToken(value: string, maxLength: number): string | CredentialResult {
  // Fail fast on huge headers before trimming or scanning them.
  if (value.length > maxLength + 64) return MALFORMED;
  const v = trimOws(value);
  if (v.length === 0) return EMPTY;
  if (v.length < 6 || !startsWithAsciiLower(v, 'bearer')) return MALFORMED;
  if (v.length === 6) return EMPTY;
  const sep = v.charCodeAt(6);
  if (sep !== 0x20 && sep !== 0x09) return MALFORMED; // "Bearerxyz"
  let start = 7;
  while (v.charCodeAt(start) === 0x20 || v.charCodeAt(start) === 0x09) start++;
  return checkToken(v.slice(start), maxLength);
}

function checkToken(token: string, maxLength: number): string | CredentialResult {
  if (token.length === 0) return EMPTY;
  if (token.length > maxLength) return MALFORMED;
  if (!isVisibleAscii(token)) return MALFORMED;
  return token;
}

/**
 * Whether `value` is `lower` (lower-case ASCII) in any ASCII case, compared in place: the header
 * name and the scheme are read on every request, and `toLowerCase` made a string of each.
 */
function equalsAsciiLower(value: string, lower: string): boolean {
  return value.length === lower.length && startsWithAsciiLower(value, lower);
}

function startsWithAsciiLower(value: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = value.charCodeAt(i);
    const l = lower.charCodeAt(i);
    // Only a letter has an upper case: 0x0d | 0x20 is '-', so no blanket `| 0x20`.
    if (c !== l && !(l >= 0x61 && l <= 0x7a && c === l - 0x20)) return false;
  }
  return true;
}

/** A known credential name, or a key or JWT under any name or bare (see query-credential.ts). */
export function hasCredentialInQuery(query: string): boolean {
  return hasCredentialInQueryString(query, QUERY_CREDENTIAL_NAMES);
}

/**
 * A JWT (JWS compact form: three base64url parts joined by dots, the first a JSON header) and an
 * mcpgate key are told apart by form: keys never contain a dot. Nothing is decoded here.
 */
export function isJwtShaped(secret: string): boolean {
  const first = secret.indexOf('.');
  if (first < 3 || !secret.startsWith('eyJ')) return false;
  const second = secret.indexOf('.', first + 1);
  if (second === -1 || secret.indexOf('.', second + 1) !== -1) return false;
  return BASE64URL_DOTS.test(secret);
}

const BASE64URL_DOTS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Whether a query string carries something that looks like a credential, under any name: a query
 * string ends up in access logs, browser history and Referer headers, so a key or token sent there
 * is refused (and so leaked keys are noticed) even beside a valid header. Caught:
 *
 * - a parameter whose name is one of QUERY_CREDENTIAL_NAMES (`key`, `token`, `access_token` ...);
 * - an mcpgate key anywhere in a name or a value (`?mcpg_...`, `?k=mcpg_...`), any case;
 * - a JWT anywhere in a name or a value (`?t=<jwt>`, `?authorization=Bearer+<jwt>`, `?s="<jwt>"`,
 *   `?x=a;<jwt>`): a segment of base64url that decodes to a JSON object with `alg`, followed by
 *   at least two more (a JWS: payload and signature, either may be empty; a JWE has four), in
 *   any run of base64url characters and dots.
 *
 * Names and values are compared percent-decoded (URLSearchParams), so `%6Dcpg_` is caught too.
 */

import { parsedAsSpelled } from '../jsonrpc/key-check.ts';

const KEY_PREFIX = 'mcpg_';

export function hasCredentialInQueryString(query: string, names: ReadonlySet<string>): boolean {
  if (query.length === 0) return false;
  for (const [name, value] of new URLSearchParams(query)) {
    if (names.has(name.trim().toLowerCase())) return true;
    if (looksLikeCredential(name) || looksLikeCredential(value)) return true;
  }
  return false;
}

/**
 * An mcpgate key, or a JWT/JWE anywhere in the text. Also used on the headers the gateway logs,
 * echoes or forwards (X-Request-Id, User-Agent), so the common text (no key prefix, no base64url
 * segment of 8 characters before two dots) is answered by two regular expressions, without
 * allocating.
 */
export function looksLikeCredential(text: string): boolean {
  if (text.length < KEY_PREFIX.length) return false;
  if (KEY_ANYWHERE.test(text)) return true;
  if (text.indexOf('.') === -1 || !JWT_CANDIDATE.test(text)) return false;
  for (const run of text.split(NOT_TOKEN)) if (holdsJwt(run)) return true;
  return false;
}

/** The key prefix in any case (ASCII letters only: no other character lower-cases to them). */
const KEY_ANYWHERE = /mcpg_/i;
/** Where a JWT may be: the last 8 characters of a header segment, and two dots after them. */
const JWT_CANDIDATE = /[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]*\./;

/**
 * Whether a run of base64url characters and dots holds a JWT: a JOSE header segment with at least
 * two segments after it. Each segment is decoded at most once, so the cost is linear in the run.
 */
function holdsJwt(run: string): boolean {
  if (run.indexOf('.') === -1) return false;
  const parts = run.split('.');
  for (let i = 0; i + 2 < parts.length; i++) if (isJoseHeader(parts[i] as string)) return true;
  return false;
}

/** Characters that cannot be part of a JWT: they split the text into runs to search. */
const NOT_TOKEN = /[^A-Za-z0-9_.-]+/;

function isJoseHeader(header: string): boolean {
  if (header.length < 8) return false;
  try {
    const json = Buffer.from(header, 'base64url').toString('utf8');
    const decoded: unknown = JSON.parse(json);
    if (typeof decoded !== 'object' || decoded === null) return false;
    // V8's JSON.parse can read a key spelled with an escape as an earlier one holding a backslash
    // (key-check.ts): `"al\u0067"` after an inner object's `"al\\"` comes out as `al\`, hiding an
    // `alg` any other parser reads. A header not read as spelled is taken for a JOSE header.
    if (!parsedAsSpelled(json, decoded)) return true;
    return typeof (decoded as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}

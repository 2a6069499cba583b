/**
 * Whether a query string carries something that looks like a credential, under any name: a query
 * string ends up in access logs, browser history and Referer headers, so a key or token sent there
 * is refused (and so leaked keys are noticed) even beside a valid header. Caught:
 *
 * - a parameter whose name is one of QUERY_CREDENTIAL_NAMES (`key`, `token`, `access_token` ...);
 * - an mcpgate key anywhere in a name or a value (`?mcpg_...`, `?k=mcpg_...`), any case;
 * - a JWT (three base64url segments whose first decodes to a JSON object with `alg`; five for a
 *   JWE) as a name or a value.
 *
 * Names and values are compared percent-decoded (URLSearchParams), so `%6Dcpg_` is caught too.
 */

import { parsedAsSpelled } from '../jsonrpc/key-check.ts';

const KEY_PREFIX = 'mcpg_';
const SEGMENT = /^[A-Za-z0-9_-]+$/;

export function hasCredentialInQueryString(query: string, names: ReadonlySet<string>): boolean {
  if (query.length === 0) return false;
  for (const [name, value] of new URLSearchParams(query)) {
    if (names.has(name.trim().toLowerCase())) return true;
    if (looksLikeCredential(name) || looksLikeCredential(value)) return true;
  }
  return false;
}

/** An mcpgate key or a JWT/JWE, possibly with spaces around it. */
export function looksLikeCredential(text: string): boolean {
  if (text.length < KEY_PREFIX.length) return false;
  if (text.toLowerCase().includes(KEY_PREFIX)) return true;
  return looksLikeJwt(text.trim());
}

function looksLikeJwt(text: string): boolean {
  const parts = text.split('.');
  if (parts.length !== 3 && parts.length !== 5) return false;
  const header = parts[0] as string;
  if (header.length < 8 || !SEGMENT.test(header)) return false;
  // The payload may be empty only in a JWS with a detached payload; other segments must be base64url.
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part.length > 0 && !SEGMENT.test(part)) return false;
  }
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

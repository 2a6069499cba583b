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
 *
 * A JWT may follow other base64url characters (`?state=x-<jwt>`, `client-<jwt>`), so a header is
 * looked for at each `ey`/`ew` in a segment (base64url of `{` and then `"` or white space), and
 * only text whose decoding is braced `{...}` is handed to JSON.parse. The work is bounded: a
 * text that needs more than MAX_DECODES decodings or MAX_PARSES parses (crafted, never a real
 * header) is taken for a credential, so it is refused (a query) or not passed on (a header).
 */
export function looksLikeCredential(text: string): boolean {
  if (text.length < KEY_PREFIX.length) return false;
  if (KEY_ANYWHERE.test(text)) return true;
  if (text.indexOf('.') === -1 || !JWT_CANDIDATE.test(text)) return false;
  const budget: Budget = { decodes: MAX_DECODES, parses: MAX_PARSES };
  for (const run of text.split(NOT_TOKEN)) if (holdsJwt(run, budget)) return true;
  return false;
}

/** The key prefix in any case (ASCII letters only: no other character lower-cases to them). */
const KEY_ANYWHERE = /mcpg_/i;
/** Where a JWT may be: the last 8 characters of a header segment, and two dots after them. */
const JWT_CANDIDATE = /[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]*\./;
/** Characters that cannot be part of a JWT: they split the text into runs to search. */
const NOT_TOKEN = /[^A-Za-z0-9_.-]+/;
/** Most decodings and JSON.parse calls one text may take before it is taken for a credential. */
const MAX_DECODES = 64;
const MAX_PARSES = 8;

interface Budget {
  decodes: number;
  parses: number;
}

/** Whether a run of base64url characters and dots holds a JOSE header with two segments after it. */
function holdsJwt(run: string, budget: Budget): boolean {
  if (run.indexOf('.') === -1) return false;
  const parts = run.split('.');
  for (let i = 0; i + 2 < parts.length; i++) {
    const part = parts[i] as string;
    // A header starts the segment (its JSON may start with white space) or follows other
    // base64url characters, at an `ey`/`ew`.
    if (part.length >= 8 && mayStartSegment(part) && isJoseHeader(part, 0, budget)) return true;
    for (let at = nextStart(part, 1); at !== -1 && part.length - at >= 8; at = nextStart(part, at + 1))
      if (isJoseHeader(part, at, budget)) return true;
  }
  return false;
}

/** The next index from `from` where a header's base64url may start (`ey` or `ew`), or -1. */
function nextStart(part: string, from: number): number {
  for (let i = from; i + 1 < part.length; i++) if (isBraceStart(part, i)) return i;
  return -1;
}

/** base64url of `{` and then `"` or white space. */
function isBraceStart(part: string, i: number): boolean {
  if (part.charCodeAt(i) !== 0x65 /* e */) return false;
  const next = part.charCodeAt(i + 1);
  return next === 0x79 /* y */ || next === 0x77; /* w */
}

/** A segment's first character as base64url of `{` or of JSON white space (I: space, C: tab or LF, D: CR). */
function mayStartSegment(part: string): boolean {
  const c = part.charCodeAt(0);
  return isBraceStart(part, 0) || c === 0x49 || c === 0x43 || c === 0x44;
}

/** true: a JOSE header at `at` (or the budget ran out); false: not one. */
function isJoseHeader(part: string, at: number, budget: Budget): boolean {
  if (--budget.decodes < 0) return true;
  const json = Buffer.from(at === 0 ? part : part.slice(at), 'base64url').toString('utf8');
  if (!braced(json)) return false;
  if (--budget.parses < 0) return true;
  try {
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

/** Whether text is `{`...`}` once JSON's white space around it is set aside. */
function braced(text: string): boolean {
  let first = 0;
  let last = text.length - 1;
  while (first <= last && isSpace(text.charCodeAt(first))) first++;
  while (last >= first && isSpace(text.charCodeAt(last))) last--;
  return first < last && text.charCodeAt(first) === 0x7b && text.charCodeAt(last) === 0x7d;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Whether `kept`, a text cut short, ends in a run of base64url characters and dots that holds a dot
 * and a segment starting `ey` or `ew` (how a JWT's header and claims begin): a token cut before its
 * signature, which looksLikeCredential needs to see. What is logged of a cut text is checked with both.
 */
export function endsInsideToken(kept: string): boolean {
  let i = kept.length;
  while (i > 0 && isTokenChar(kept.charCodeAt(i - 1))) i--;
  const run = kept.slice(i);
  return run.includes('.') && JWT_SEGMENT.test(run);
}

const JWT_SEGMENT = /(?:^|\.)e[yw]/;

function isTokenChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x2d ||
    c === 0x5f ||
    c === 0x2e
  );
}

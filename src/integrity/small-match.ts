/**
 * The common response matched without a parse: a small JSON body (under LIST_MIN_BYTES) answering
 * the one request its exchange forwarded, when that request planned nothing (a `tools/call`). One
 * strict pass over the bytes (jsonrpc/strict-skip.ts) validates the body and finds its top-level
 * id, whose bytes must be exactly the tag this exchange sent (kept by the exchange: no HMAC, no
 * decoding, no JSON.parse, no string of the body); the client's id is then spliced into the bytes.
 *
 * It answers only for the plainest shape, where the parsed path (match.ts) provably does the same:
 * one top-level object (whitespace before it, nothing else: no BOM, no batch) whose keys hold no
 * escape; one `"id"`, an unescaped string equal to the tag; either one `"result"`, an object whose
 * own keys hold no escape and include no `"_meta"` (where a subscription id would be), or one
 * `"error"`, an object (the parsed path reads nothing in it); no `"method"`; valid JSON to the last
 * byte, valid UTF-8, nested less than MAX_DEPTH deep. For anything
 * else, valid or not, it returns undefined before anything is answered, and the parsed path decides
 * (so a refusal, and its error, is always the parsed path's). test/unit/integrity/
 * small-match-differential.test.ts compares the two on generated and hostile bodies.
 */
import { isUtf8 } from 'node:buffer';
import {
  CLOSE_OBJECT,
  COMMA,
  escaped,
  OPEN_OBJECT,
  QUOTE,
  string,
  useWords,
  value,
  ws,
} from '../jsonrpc/strict-skip.ts';
import type { ResponseIds } from './restore.ts';
import { bytesAre, plainObjectEnd, valueStart } from './plain-members.ts';
import { LIST_MIN_BYTES } from './list-match.ts';

/** Measured on plain ASCII text without escapes (the parse's best case): even at 1.1 KiB, ahead at 2.3. */
const BYTEWISE_MAX_BYTES = 1536;

/** The bytes for the client, or undefined: the parsed path decides (nothing was answered). */
export function matchSmallResponse(body: Buffer, ids: ResponseIds): Buffer | undefined {
  return matchSmallSpan(body, 0, body.length, ids);
}

/**
 * The same for the JSON at frame[from, to) (an SSE event's data): the bytes for the client are the
 * frame's with the id replaced. The whole frame must be valid UTF-8.
 */
export function matchSmallSpan(
  frame: Buffer,
  from: number,
  to: number,
  ids: ResponseIds,
): Buffer | undefined {
  const length = to - from;
  if (length >= LIST_MIN_BYTES) return undefined;
  // Memory that is not 4-aligned is read byte by byte: past this size JSON.parse is cheaper.
  if (length > BYTEWISE_MAX_BYTES && (frame.byteOffset + from) % 4 !== 0) return undefined;
  const tag = ids.sole?.();
  if (tag === undefined) return undefined;
  const body = from === 0 && to === frame.length ? frame : frame.subarray(from, to);
  const idStart = soleIdStart(body, tag);
  if (idStart === -1 || !isUtf8(frame)) return undefined;
  const untagged = ids.answer(tag);
  if (untagged === undefined) return undefined;
  const clientId = untagged.clientId;
  // A number id (a safe integer: request-tag.ts tags no other) is written as JSON writes it, its
  // decimal digits, without JSON.stringify's serializer or an encoder call to count its bytes.
  const number = typeof clientId === 'number' && Number.isSafeInteger(clientId);
  const id = number ? String(clientId) : JSON.stringify(clientId);
  const start = from + idStart;
  const end = start + tag.length + 2;
  const idBytes = number ? id.length : Buffer.byteLength(id);
  const out = Buffer.allocUnsafe(frame.length - (end - start) + idBytes);
  frame.copy(out, 0, 0, start);
  // An ASCII id (as many bytes as characters: a number, mostly) is written without an encoder call.
  if (idBytes === id.length) for (let k = 0; k < idBytes; k++) out[start + k] = id.charCodeAt(k);
  else out.write(id, start, 'utf8');
  frame.copy(out, start + idBytes, end);
  return out;
}

/**
 * Where the top-level id's value (its opening quote) starts in `b`, when `b` is the plain shape
 * above and the id is `tag` (ASCII) spelled without escapes; else -1. Never throws.
 */
export function soleIdStart(b: Uint8Array, tag: string): number {
  // Longer bodies are read a word at a time in their strings (worth its view past a few lines).
  const words = b.length >= WORDS_FROM;
  if (words) useWords(b);
  try {
    return scan(b, tag);
  } catch {
    // Not JSON, or too deep: the parsed path decides (and says why).
    return -1;
  } finally {
    if (words) useWords(undefined);
  }
}

const WORDS_FROM = 256;

const ID = 1;
const RESULT = 2;
const REFUSED = 3;
const META = 4;
const ERROR = 5;

function scan(b: Uint8Array, tag: string): number {
  let i = ws(b, 0);
  if (b[i] !== OPEN_OBJECT) return -1;
  let idStart = -1;
  /** A result or an error was read. */
  let answer = false;
  i = ws(b, i + 1);
  for (;;) {
    if (b[i] !== QUOTE) return -1;
    const keyEnd = string(b, i);
    if (escaped) return -1;
    const kind = topKey(b, i + 1, keyEnd - 1);
    const vs = valueStart(b, keyEnd);
    let ve: number;
    if (kind === ID) {
      if (idStart !== -1 || b[vs] !== QUOTE) return -1;
      ve = string(b, vs);
      // A tag holds no backslash: bytes equal to it are the tag unescaped.
      if (!bytesAre(b, vs + 1, ve - 1, tag)) return -1;
      idStart = vs;
    } else if (kind === RESULT || kind === ERROR) {
      if (answer || b[vs] !== OPEN_OBJECT) return -1;
      answer = true;
      ve = kind === RESULT ? plainObjectEnd(b, vs, isMeta) : value(b, vs, 1);
      if (ve === -1) return -1;
    } else if (kind === REFUSED) return -1;
    else ve = value(b, vs, 1);
    i = ws(b, ve);
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    if (b[i] !== CLOSE_OBJECT) return -1;
    break;
  }
  if (ws(b, i + 1) !== b.length || !answer) return -1;
  return idStart;
}

/** Which of the keys this scan cares about the unescaped key in b[from, to) is (0: another). */
function topKey(b: Uint8Array, from: number, to: number): number {
  const n = to - from;
  if (n === 2) return b[from] === 0x69 && b[from + 1] === 0x64 ? ID : 0;
  if (n === 6) {
    if (bytesAre(b, from, to, 'result')) return RESULT;
    return bytesAre(b, from, to, 'method') ? REFUSED : 0;
  }
  if (n === 5) {
    if (bytesAre(b, from, to, 'error')) return ERROR;
    return bytesAre(b, from, to, '_meta') ? META : 0;
  }
  return 0;
}

/** A result's own `_meta` (where a subscription id would be). */
function isMeta(b: Uint8Array, from: number, to: number): boolean {
  return bytesAre(b, from, to, '_meta');
}

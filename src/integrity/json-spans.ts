/**
 * Where a member's value lies in JSON text, so an id can be replaced in place: the rest of the text
 * (numbers, strings, key order) stays exactly as it was, and nothing is re-serialised. The walker
 * does not validate: callers run it only on text that JSON.parse accepted (or that the gateway
 * wrote), and it agrees with JSON.parse on which member a key names, because keys are compared
 * after unescaping (`"\u0069d"` is `id`) and a key that occurs twice in one object is reported, not
 * guessed (JSON.parse keeps the last, other parsers the first).
 */

/** A half-open range [start, end) of the text. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/** The same key twice in one object on the way: the text is ambiguous. */
export const DUPLICATE = Symbol('duplicate key');

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** The index after the string whose opening quote is at `i`. */
function skipString(text: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q === -1) return text.length;
    let backslashes = 0;
    for (let k = q - 1; k > i && text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** The index after the value that starts at `i` (no leading space). */
export function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return skipString(text, i);
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    let depth = 0;
    let j = i;
    while (j < text.length) {
      const d = text.charCodeAt(j);
      if (d === QUOTE) {
        j = skipString(text, j);
        continue;
      }
      if (d === OPEN_OBJECT || d === OPEN_ARRAY) depth++;
      else if (d === CLOSE_OBJECT || d === CLOSE_ARRAY) {
        depth--;
        if (depth === 0) return j + 1;
      }
      j++;
    }
    return j;
  }
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === COMMA || d === CLOSE_OBJECT || d === CLOSE_ARRAY || isSpace(d)) break;
    j++;
  }
  return j;
}

/**
 * Whether the key whose quotes are at `start` and `end - 1` reads as `key` for JSON.parse. `key`
 * holds no backslash (the members looked up here are plain names), so a raw key spelled exactly as
 * `key` reads as it without a copy; only a raw key with an escape in it is unescaped to compare.
 */
function keyIs(text: string, start: number, end: number, key: string): boolean {
  const length = end - start - 2;
  // An escape spells one character with two or more: a raw key as long as `key` has none.
  if (length <= key.length) return length === key.length && text.startsWith(key, start + 1);
  for (let k = start + 1; k < end - 1; k++) {
    if (text.charCodeAt(k) === BACKSLASH) return JSON.parse(text.slice(start, end)) === key;
  }
  return false;
}

/**
 * The value of member `key` of the object whose `{` is at `objectStart`: its span, undefined when
 * there is no object at `objectStart` or it has no such member, or DUPLICATE.
 */
export function memberSpan(
  text: string,
  objectStart: number,
  key: string,
): Span | undefined | typeof DUPLICATE {
  if (text.charCodeAt(objectStart) !== OPEN_OBJECT) return undefined;
  let found: Span | undefined;
  let i = skipSpace(text, objectStart + 1);
  if (text.charCodeAt(i) === CLOSE_OBJECT) return undefined;
  while (i < text.length) {
    const keyEnd = skipString(text, i);
    const colon = skipSpace(text, keyEnd);
    if (text.charCodeAt(colon) !== COLON) return found;
    const valueStart = skipSpace(text, colon + 1);
    const valueEnd = skipValue(text, valueStart);
    if (keyIs(text, i, keyEnd, key)) {
      if (found !== undefined) return DUPLICATE;
      found = { start: valueStart, end: valueEnd };
    }
    i = skipSpace(text, valueEnd);
    if (text.charCodeAt(i) !== COMMA) break;
    i = skipSpace(text, i + 1);
  }
  return found;
}

/** The value at a path of object members from the object at `start` (see memberSpan). */
export function pathSpan(
  text: string,
  start: number,
  path: readonly string[],
): Span | undefined | typeof DUPLICATE {
  let span: Span | undefined = { start, end: start };
  for (const key of path) {
    const next = memberSpan(text, span.start, key);
    if (next === undefined || next === DUPLICATE) return next;
    span = next;
  }
  return span;
}

/**
 * Where each message starts: the top-level object, or each element of a top-level array (in order,
 * so index i is the i-th message JSON.parse produced).
 */
export function messageStarts(text: string): number[] {
  const i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== OPEN_ARRAY) return [i];
  const starts: number[] = [];
  let j = skipSpace(text, i + 1);
  if (text.charCodeAt(j) === CLOSE_ARRAY) return starts;
  while (j < text.length) {
    starts.push(j);
    j = skipSpace(text, skipValue(text, j));
    if (text.charCodeAt(j) !== COMMA) break;
    j = skipSpace(text, j + 1);
  }
  return starts;
}

/** One replacement of a span by new text. */
export interface Edit extends Span {
  readonly text: string;
}

/**
 * The bytes of `text` with each edit applied, from `bytes`, its UTF-8 encoding, when the text is
 * ASCII (`bytes.length === text.length`: then text offsets are byte offsets): unchanged stretches are
 * copied, not encoded again. Edits must not overlap; any order. No edits: `bytes` itself.
 */
export function applyEditsToAscii(bytes: Buffer, edits: Edit[]): Buffer {
  if (edits.length === 0) return bytes;
  if (edits.length > 1) edits.sort((a, b) => a.start - b.start);
  let length = bytes.length;
  for (const edit of edits) length += Buffer.byteLength(edit.text) - (edit.end - edit.start);
  const out = Buffer.allocUnsafe(length);
  let from = 0;
  let to = 0;
  for (const edit of edits) {
    to += bytes.copy(out, to, from, edit.start);
    to += out.write(edit.text, to, 'utf8');
    from = edit.end;
  }
  bytes.copy(out, to, from);
  return out;
}

/** `text` with each edit applied (edits must not overlap; any order). */
export function applyEdits(text: string, edits: Edit[]): string {
  if (edits.length === 0) return text;
  edits.sort((a, b) => a.start - b.start);
  let out = '';
  let at = 0;
  for (const edit of edits) {
    out += text.slice(at, edit.start) + edit.text;
    at = edit.end;
  }
  return out + text.slice(at);
}

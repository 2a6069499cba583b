/**
 * Strict JSON grammar over bytes, without building anything: each function returns the index after
 * the token or value that starts at `i`, or throws NOT_JSON where the bytes stop being JSON as
 * JSON.parse reads it (RFC 8259: no comments, no trailing commas, no raw control characters in
 * strings, only the standard escapes, numbers without leading zeros). Containers are walked with an
 * explicit stack, never recursion, and refused past MAX_DEPTH levels (TOO_DEEP), so nesting costs
 * nothing but its bytes. UTF-8 validity is not checked here: callers check the whole body once
 * (node:buffer isUtf8), which is faster than doing it byte by byte.
 */
import { MAX_DEPTH } from './limits.ts';
import { digitsEnd } from './digit-run.ts';

/** The bytes are not JSON. */
export const NOT_JSON = Symbol('not JSON');
/** Nested deeper than MAX_DEPTH. */
export const TOO_DEEP = Symbol('too deep');

export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COLON = 0x3a;
export const COMMA = 0x2c;
export const OPEN_OBJECT = 0x7b;
export const CLOSE_OBJECT = 0x7d;
export const OPEN_ARRAY = 0x5b;
export const CLOSE_ARRAY = 0x5d;

/** Bytes that may follow a backslash (`u` is checked for its four hex digits). */
const ESCAPES = new Uint8Array(256);
for (const c of '"\\/bfnrtu') ESCAPES[c.charCodeAt(0)] = 1;
/** Bytes that may follow a backslash, but `u`. */
export const SHORT_ESCAPES = new Uint8Array(256);
for (const c of '"\\/bfnrt') SHORT_ESCAPES[c.charCodeAt(0)] = 1;
/** Hex digits, as a `\u` escape spells them. */
export const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

/** Bytes a string's walk stops at: the closing quote, a backslash, or a raw control character. */
const STOP = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) STOP[c] = 1;
STOP[QUOTE] = 1;
STOP[BACKSLASH] = 1;

/** The index of the first byte at or after `i` that is not JSON whitespace. */
export function ws(b: Uint8Array, i: number): number {
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Set by string(): whether the last string walked held an escape. */
export let escaped = false;

/**
 * The body being walked as 32-bit words, when its bytes are 4-aligned in memory (set by
 * useWords): a string's plain stretches are then checked four bytes at a time.
 */
let wordBytes: Uint8Array | undefined;
let words: Uint32Array | undefined;

/** Lets string() read `b` a word at a time while it walks it; `undefined` lets go of it. */
export function useWords(b: Uint8Array | undefined): void {
  if (b !== undefined && b.byteOffset % 4 === 0 && b.length >= 4) {
    wordBytes = b;
    words = new Uint32Array(b.buffer, b.byteOffset, b.length >> 2);
  } else wordBytes = words = undefined;
}

/** Whether no byte of the word is a quote, a backslash or below 0x20 (for bytes below 0x80). */
function plainWord(x: number): boolean {
  const q = x ^ 0x22222222;
  const s = x ^ 0x5c5c5c5c;
  // A byte is zero (or, for the last term, below 0x20) iff its high bit is set here; bytes of
  // 0x80 and above never set it (~x clears it).
  return ((((q - 0x01010101) & ~q) | ((s - 0x01010101) & ~s) | ((x - 0x20202020) & ~x)) & 0x80808080) === 0;
}

/** The index after the string whose opening quote is at `i`. */
export function string(b: Uint8Array, i: number): number {
  escaped = false;
  const n = b.length;
  const w = b === wordBytes ? words : undefined;
  let j = i + 1;
  while (j < n) {
    if (w !== undefined && (j & 3) === 0 && j + 4 <= n) {
      // Plain words in a row, in a loop of their own.
      let k = j >> 2;
      const last = n >> 2;
      while (k < last && plainWord(w[k] as number)) k++;
      j = k << 2;
      if (k === last) continue;
      const x = w[k] as number;
      // Two escapes other than `\u` (a run of `\"` is the densest string there is).
      const e1 = (x >>> 8) & 0xff;
      const e3 = x >>> 24;
      if ((x & 0x00ff00ff) === 0x005c005c && SHORT_ESCAPES[e1] === 1 && SHORT_ESCAPES[e3] === 1) {
        escaped = true;
        j += 4;
        continue;
      }
    }
    const c = b[j] as number;
    if (STOP[c] === 0) {
      j++;
      continue;
    }
    if (c === QUOTE) return j + 1;
    if (c < 0x20) throw NOT_JSON;
    escaped = true;
    const e = b[j + 1] as number;
    if (ESCAPES[e] !== 1) throw NOT_JSON;
    if (e === 0x75) {
      if (HEX[b[j + 2] as number] !== 1 || HEX[b[j + 3] as number] !== 1) throw NOT_JSON;
      if (HEX[b[j + 4] as number] !== 1 || HEX[b[j + 5] as number] !== 1) throw NOT_JSON;
      j += 6;
    } else j += 2;
  }
  throw NOT_JSON;
}

function digits(b: Uint8Array, i: number): number {
  const start = i;
  i = digitsEnd(b, i, b === wordBytes ? words : undefined);
  if (i === start) throw NOT_JSON;
  return i;
}

/** The index after the number at `i`: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
export function number(b: Uint8Array, i: number): number {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else i = digits(b, i);
  if (b[i] === 0x2e) i = digits(b, i + 1);
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    i = digits(b, i);
  }
  return i;
}

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

function literal(b: Uint8Array, i: number, word: readonly number[]): number {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) throw NOT_JSON;
  return i + word.length;
}

/** The index after the scalar (string, number, true, false, null) at `i`. */
export function scalar(b: Uint8Array, i: number): number {
  const c = b[i] as number;
  if (c === QUOTE) return string(b, i);
  if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return number(b, i);
  if (c === 0x74) return literal(b, i, TRUE);
  if (c === 0x66) return literal(b, i, FALSE);
  if (c === 0x6e) return literal(b, i, NULL);
  throw NOT_JSON;
}

/** After a key's opening quote at `i`: the index of its value (the key, colon and spaces walked). */
export function afterKey(b: Uint8Array, i: number): number {
  if (b[i] !== QUOTE) throw NOT_JSON;
  i = ws(b, string(b, i));
  if (b[i] !== COLON) throw NOT_JSON;
  return ws(b, i + 1);
}

/** Open containers of the value being walked: the closing byte each one expects. */
const closers = new Uint8Array(MAX_DEPTH + 1);

/**
 * The index after the value that starts at `i` (no leading space), validated; `depth` is how many
 * containers already enclose it.
 */
export function value(b: Uint8Array, i: number, depth: number): number {
  let c = b[i] as number;
  if (c !== OPEN_OBJECT && c !== OPEN_ARRAY) return scalar(b, i);
  let d = 0;
  for (;;) {
    // b[i] starts a value.
    c = b[i] as number;
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth + d >= MAX_DEPTH) throw TOO_DEEP;
      const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
      closers[d++] = close;
      i = ws(b, i + 1);
      if (b[i] !== close) {
        if (close === CLOSE_OBJECT) i = afterKey(b, i);
        continue;
      }
      d--;
      i++;
    } else i = scalar(b, i);
    // After a value: close what ends here, or go on to the next member or element.
    for (;;) {
      if (d === 0) return i;
      i = ws(b, i);
      c = b[i] as number;
      const close = closers[d - 1] as number;
      if (c === COMMA) {
        i = ws(b, i + 1);
        if (close === CLOSE_OBJECT) i = afterKey(b, i);
        break;
      }
      if (c !== close) throw NOT_JSON;
      d--;
      i++;
    }
  }
}

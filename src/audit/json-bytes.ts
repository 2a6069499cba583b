/**
 * JSON values written as UTF-8 bytes into a LineSink as JSON.stringify writes them, for
 * the audit line (line.ts). Each either copies bytes it has proven need no escape, or hands the
 * value to JSON.stringify and encodes its output: the escaping is always JSON.stringify's own, and
 * three characters more (writeJson).
 * test/unit/audit/json-bytes.test.ts compares each with JSON.stringify (those three escaped) on
 * generated values.
 */
import type { LineSink } from './line-buffer.ts';

/** ASCII text known at start-up (a key with its punctuation), as bytes. */
export function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) throw new TypeError('not ASCII');
    out[i] = c;
  }
  return out;
}

/** Bytes as they are (ASCII from asciiBytes). */
export function writeRaw(out: LineSink, raw: Uint8Array): void {
  const b = out.room(raw.length);
  let at = out.at;
  for (let i = 0; i < raw.length; i++) b[at++] = raw[i] as number;
  out.at = at;
}

/**
 * `s` as JSON.stringify writes it. Printable ASCII other than `"` and `\` is copied a byte per
 * character between quotes; a string holding anything else (a control character, a quote, a
 * backslash, DEL, any non-ASCII unit, a lone surrogate) is JSON.stringify's.
 */
export function writeString(out: LineSink, s: string): void {
  const b = out.room(s.length + 2);
  const start = out.at;
  let at = start;
  b[at++] = 0x22;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
      writeJson(out, JSON.stringify(s));
      return;
    }
    b[at++] = c;
  }
  b[at++] = 0x22;
  out.at = at;
}

/**
 * U+0085, U+2028 and U+2029, which JSON.stringify leaves as they are but other readers end a line
 * at (Python's `str.splitlines`, Java's `\R`, Unicode's line breaking): one request's line must be
 * one line to any reader, so they are written as `\u` escapes. JSON only allows them inside a
 * string, where the escape means the same character. The control characters such readers also split
 * at are below U+0020, which JSON.stringify escapes itself.
 */
const LINE_BREAK = /[\u0085\u2028\u2029]/;
const LINE_BREAKS = /[\u0085\u2028\u2029]/g;

function escapeBreak(c: string): string {
  return c === '\u0085' ? '\\u0085' : c === '\u2028' ? '\\u2028' : '\\u2029';
}

/** Text that is JSON already (JSON.stringify's output), UTF-8, with its line breaks escaped. */
export function writeJson(out: LineSink, text: string): void {
  if (LINE_BREAK.test(text)) text = text.replace(LINE_BREAKS, escapeBreak);
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  const b = out.room(text.length * 3);
  out.at += b.write(text, out.at, 'utf8');
}

/** A number as JSON.stringify writes it: String's digits, null when it is not finite. */
export function writeNumber(out: LineSink, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    writeJson(out, Number.isFinite(n) ? String(n) : 'null');
    return;
  }
  // A safe integer has at most 16 digits; they are written from the right.
  const b = out.room(16);
  let end = out.at + digits(n);
  out.at = end;
  do {
    b[--end] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
}

function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/**
 * `Math.round(ms * 1000) / 1000` (milliseconds to 0.001 ms, record.ts's round3) as JSON.stringify
 * writes it. For 0 to 10^15 thousandths that is the decimal of thousandths / 1000 without trailing
 * zeros: the double nearest a decimal of at most 15 significant digits is printed as that decimal,
 * and these are never small or large enough for an exponent. Anything else is String's.
 */
export function writeMillis(out: LineSink, ms: number): void {
  const k = Math.round(ms * 1000);
  if (!(k >= 0 && k < 1e15)) {
    writeNumber(out, k / 1000);
    return;
  }
  const whole = Math.floor(k / 1000);
  let frac = k - whole * 1000;
  writeNumber(out, whole);
  if (frac === 0) return;
  const b = out.room(4);
  let at = out.at;
  b[at++] = 0x2e;
  b[at++] = 0x30 + Math.floor(frac / 100);
  frac %= 100;
  if (frac !== 0) {
    b[at++] = 0x30 + Math.floor(frac / 10);
    frac %= 10;
    if (frac !== 0) b[at++] = 0x30 + frac;
  }
  out.at = at;
}

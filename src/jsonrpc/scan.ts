/**
 * A linear pre-scan of a JSON body, before JSON.parse builds anything. It enforces the structural
 * limits the moment they are crossed (nesting depth, number of values), so a hostile body costs at
 * most one pass over the bytes up to that point, and reports whether any number is spelled in a way
 * a double cannot reproduce (`1e400`, `-0`, `1.0`, 20-digit integers), where they are and how deep,
 * so the parser keeps those lexemes as written (where they are read). It also counts the values and tells whether any string
 * holds a `\u` escape: on a valid body, the parsed value holds as many values exactly when no key
 * was repeated in an object, which is how parse.ts knows the bytes mean what it judged.
 *
 * It does not validate: JSON.parse does that next. On malformed input it may count oddly, but it
 * still visits each byte at most a constant number of times (long strings are skipped with indexOf).
 */

import { digitsEnd, wordsOf } from './digit-run.ts';
import { COLON, HEX, SHORT_ESCAPES, ws } from './strict-skip.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Bytes of a string read one by one before the rest is searched with indexOf. */
const SHORT_STRING = 64;
/**
 * The same, read four at a time (a large body): a string just longer than the bytes read costs a
 * call to indexOf besides, so a body of strings of that length is the slowest of its size. The
 * scan of 4 MiB of 64-byte strings took 4.3 ms when only 64 bytes were read before the call; with
 * 128 read by words, the slowest length (128) takes 2.6 ms, and 256 would make 256 the slowest, at
 * 3.2 ms (CPU time, one run, bench/parse-fuzz.ts shapes).
 */
const WORD_STRING = 128;
/**
 * Value strings at least this long (in bytes, quotes included) are reported (`long`), so that a
 * parse can leave the ones nobody reads unbuilt (skeleton.ts). Shorter strings are what any body
 * of many small values is made of, and cost what JSON.parse costs.
 */
export const LONG_STRING = 1024;
/** No kept numbers (most bodies): one frozen array, not two new ones per body. */
const NONE: readonly number[] = Object.freeze([]);

export interface ScanLimits {
  /** Deepest nesting of arrays and objects allowed (the top-level value is at depth 1). */
  readonly maxDepth: number;
  /** Most values (scalars, containers and object keys) allowed in one body. */
  readonly maxValues: number;
}

export type ScanResult =
  | {
      readonly ok: true;
      readonly values: number;
      /**
       * Start and end offsets of each number a double does not spell back the same way. This and
       * `depths` are views of memory the next scan reuses: read them before scanning again.
       */
      readonly lossy: ArrayLike<number>;
      /** For each of those numbers, how many containers it is in (1: a member of the top value). */
      readonly depths: ArrayLike<number>;
      /** Whether a string (or key) holds a `\u` escape. */
      readonly unicodeEscape: boolean;
      /** Whether a key holds an escaped quote (`\"`), which JSON.parse can misread (parse.ts). */
      readonly keyQuote: boolean;
      /** Whether a key holds any escape: only such a key can be misread so (key-check.ts). */
      readonly keyEscape: boolean;
      /**
       * Start (the opening quote) and end (after the closing quote) of each string of at least
       * LONG_STRING bytes that is not a key, in order.
       */
      readonly long: readonly number[];
      /**
       * For each of those strings, where the part the scan did not check begins: the bytes from
       * its opening quote to there hold no backslash, those from there on were read as JSON.parse
       * reads a string and are valid; -1 when they are not (the body is refused: skeleton.ts
       * validStrings).
       */
      readonly checked: readonly number[];
      /**
       * When asked for: start and end of each string (key or value) of at most 128 bytes that the
       * scan read whole and found valid (no backslash, no raw control byte), in order; a view of
       * memory the next scan reuses, like `lossy`.
       */
      readonly plain: ArrayLike<number>;
    }
  | {
      readonly ok: false;
      readonly limit: 'depth' | 'values';
      /** Bytes examined before the limit was crossed (the offending byte included). */
      readonly examined: number;
    };

/**
 * @param plainStrings whether to report the plain strings (`plain`), for a walk of the arguments
 *   (unread-spans.ts) that follows
 */
export function scanJson(b: Buffer, limits: ScanLimits, plainStrings = false): ScanResult {
  const { maxDepth, maxValues } = limits;
  const n = b.length;
  let depth = 0;
  let values = 0;
  // Start, end and depth of each number kept as written, and of each that needs a closer look (its
  // end stored as ~end), checked once the body is known to be within the limits (so a refused body
  // costs the scan only). Taken at the first such number, room for as many numbers as the body can
  // hold: a typed array outside the JavaScript heap, never grown nor copied by a collection (a body
  // may hold 100,000 numbers), and kept for the next scan (memory).
  let found: Int32Array | undefined;
  let count = 0;
  let i = 0;
  // The next backslash at or after some offset, searched lazily and only forward, so the searches
  // together read the body once (-1: none left).
  let backslash = -2;
  let unicodeEscape = false;
  let keyQuote = false;
  let keyEscape = false;
  let long: number[] | undefined;
  let checked: number[] | undefined;
  let plain: Int32Array | undefined;
  let plainCount = 0;
  // Long runs of digits are read a word at a time (only a large body can hold one).
  const words = n >= 4096 ? wordsOf(b) : undefined;
  while (i < n) {
    const c = b[i] as number;
    if (c === QUOTE) {
      if (++values > maxValues) return { ok: false, limit: 'values', examined: i + 1 };
      const open = i;
      // The string ends at the next quote, unless an escape comes first; then walk its bytes. Its
      // first bytes are read here (most strings are short: a call to indexOf costs more than
      // reading them; in a large body four at a time, so up to 128 of them), the rest of a long
      // one is searched with indexOf.
      let j = i + 1;
      const short = words === undefined ? SHORT_STRING : WORD_STRING;
      const stop = j + short < n ? j + short : n;
      // No raw control byte read so far.
      let clean = true;
      while (j < stop) {
        // Four bytes at a time where they are aligned (a large body only: words).
        if (words !== undefined && (j & 3) === 0 && j + 4 <= stop) {
          let k = j >> 2;
          const last = stop >> 2;
          for (; k < last; k++) {
            const x = words[k] as number;
            const q = x ^ 0x22222222;
            const s = x ^ 0x5c5c5c5c;
            // A quote, a backslash, or a byte below 0x20 (read one by one below). The test of
            // strict-skip.ts plainWord, written out: a call to it made this scan of 4 MiB of `1.0`
            // between 80-byte strings 1.1 to 1.5 times slower (V8 does not inline it here).
            if (
              ((((q - 0x01010101) & ~q) | ((s - 0x01010101) & ~s) | ((x - 0x20202020) & ~x)) & 0x80808080) !==
              0
            )
              break;
          }
          if (k !== j >> 2) {
            j = k << 2;
            continue;
          }
        }
        const d = b[j] as number;
        if (d === QUOTE || d === BACKSLASH) break;
        if (d < 0x20) clean = false;
        j++;
      }
      if (j === stop) {
        const quote = b.indexOf(QUOTE, j);
        if (quote === -1) break;
        if (backslash !== -1 && backslash < j) backslash = b.indexOf(BACKSLASH, j);
        if (backslash === -1 || backslash > quote) {
          i = quote + 1;
          // No backslash before its closing quote: only a raw control byte can make it invalid.
          if (i - open >= LONG_STRING && !isKey(b, i)) {
            (long ??= []).push(open, i);
            (checked ??= []).push(quote);
          }
          continue;
        }
        j = backslash;
      } else if (b[j] === QUOTE) {
        i = j + 1;
        if (plainStrings && clean) {
          plain ??= plainMemory(2 * maxValues);
          plain[plainCount++] = open;
          plain[plainCount++] = i;
        }
        continue;
      }
      // From the first backslash on, each byte is read: as JSON.parse reads a string (strict-skip.ts
      // string()), so a long string's check need not read this part again (skeleton.ts
      // validStrings).
      i = j;
      let quoteEscape = false;
      let valid = true;
      while (i < n) {
        const d = b[i] as number;
        if (d === QUOTE) break;
        if (d === BACKSLASH) {
          const e = b[i + 1] as number;
          if (e === 0x75 /* u */) {
            unicodeEscape = true;
            // Four hex digits, never a quote nor a backslash, are stepped over at once.
            if (
              HEX[b[i + 2] as number] === 1 &&
              HEX[b[i + 3] as number] === 1 &&
              HEX[b[i + 4] as number] === 1 &&
              HEX[b[i + 5] as number] === 1
            ) {
              i += 6;
              continue;
            }
            valid = false;
          } else if (e === QUOTE) quoteEscape = true;
          else if (SHORT_ESCAPES[e] !== 1) valid = false;
          i += 2;
        } else {
          if (d < 0x20) valid = false;
          i++;
        }
      }
      i++;
      if (i > n) continue;
      if (isKey(b, i)) {
        keyEscape = true;
        if (quoteEscape) keyQuote = true;
      } else if (i - open >= LONG_STRING) {
        (long ??= []).push(open, i);
        (checked ??= []).push(valid ? j : -1);
      }
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > maxDepth) return { ok: false, limit: 'depth', examined: i + 1 };
      if (++values > maxValues) return { ok: false, limit: 'values', examined: i + 1 };
      i++;
      continue;
    }
    if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
      i++;
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      if (++values > maxValues) return { ok: false, limit: 'values', examined: i + 1 };
      // The digits first: most numbers are integers, and a long one is read here only.
      let j = digitsEnd(b, i + 1, words);
      if (j < n && isNumberByte(b[j] as number)) {
        // A fraction or an exponent (or a stray sign): converted and compared once within limits.
        j++;
        for (;;) {
          j = digitsEnd(b, j, words);
          if (j < n && isNumberByte(b[j] as number)) j++;
          else break;
        }
        found ??= memory(room(n - i, maxValues - values + 1));
        found[count++] = i;
        found[count++] = ~j;
        found[count++] = depth;
      } else {
        const digits = c === 0x2d ? j - i - 1 : j - i;
        const first = c === 0x2d ? b[i + 1] : c;
        // 1 to 15 digits without a leading zero, or `0`: a double always spells it back alike.
        // Seventeen or more: no safe integer, kept as written even when a double happens to print
        // it alike (harmless: a kept number is written back byte for byte).
        if (digits > 15 || digits < 1 || (first === 0x30 && (digits > 1 || c === 0x2d))) {
          found ??= memory(room(n - i, maxValues - values + 1));
          found[count++] = i;
          found[count++] = digits > 16 ? j : ~j;
          found[count++] = depth;
        }
      }
      i = j;
      continue;
    }
    if (c === 0x74 /* t */ || c === 0x66 /* f */ || c === 0x6e /* n */) {
      if (++values > maxValues) return { ok: false, limit: 'values', examined: i + 1 };
      // Skip the rest of the literal so its letters are not counted again.
      i++;
      while (i < n && (b[i] as number) >= 0x61 && (b[i] as number) <= 0x7a) i++;
      continue;
    }
    i++;
  }
  // The kept ones, compacted in place into start and end pairs (a pair is written no later than
  // its triple is read), and their depths apart: views of typed arrays, not JavaScript arrays (two
  // arrays of 48,000 numbers cost ~290 page faults a body, fresh each time, more than the scan).
  let kept = 0;
  if (found !== undefined) {
    if (depthMemory.length < count / 3) depthMemory = new Int32Array(count / 3);
    for (let k = 0; k + 2 < count; k += 3) {
      const start = found[k] as number;
      let end = found[k + 1] as number;
      if (end < 0) {
        end = ~end;
        if (isCanonicalNumber(b, start, end)) continue;
      }
      depthMemory[kept] = found[k + 2] as number;
      found[2 * kept] = start;
      found[2 * kept + 1] = end;
      kept++;
    }
  }
  return {
    ok: true,
    values,
    lossy: found === undefined || kept === 0 ? NONE : found.subarray(0, 2 * kept),
    depths: kept === 0 ? NONE : depthMemory.subarray(0, kept),
    unicodeEscape,
    keyQuote,
    keyEscape,
    long: long ?? NONE,
    checked: checked ?? NONE,
    plain: plain === undefined ? NONE : plain.subarray(0, plainCount),
  };
}

/** Whether the string that ends before `i` is a key: a colon follows it (after any whitespace). */
function isKey(b: Buffer, i: number): boolean {
  return b[ws(b, i)] === COLON;
}

/**
 * Entries for the numbers from here on: three each (start, end, depth), and no more numbers than
 * values left, nor than one every two bytes (a number and the comma after it).
 */
function room(bytesLeft: number, valuesLeft: number): number {
  return 3 * Math.min((bytesLeft >> 1) + 1, valuesLeft);
}

/**
 * The numbers' entries and their depths, kept from one scan to the next (at most 16 bytes per value
 * the limits allow: 1.6 MB at 100,000). Fresh memory costs a page fault per 4 KiB the first time
 * it is written, ~190 for 48,000 kept numbers: on this kind of VM more than the scan of them. A
 * scan's `lossy` and `depths` are views of it, so they are read before the next scan (parse.ts
 * reads them within one parseBody, which nothing interrupts).
 */
let entryMemory = new Int32Array(0);
let depthMemory = new Int32Array(0);
/** The plain strings' offsets, kept alike (8 bytes per value the limits allow). */
let plainStore = new Int32Array(0);

function plainMemory(size: number): Int32Array {
  if (plainStore.length < size) plainStore = new Int32Array(size);
  return plainStore;
}

function memory(size: number): Int32Array {
  if (entryMemory.length < size) entryMemory = new Int32Array(size);
  return entryMemory;
}

function isNumberByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

/**
 * Whether JSON.stringify of the double this lexeme parses to spells it the same way, for a number
 * its digits alone do not settle (16 digits, a leading zero, `-0`, a fraction, an exponent).
 */
function isCanonicalNumber(b: Buffer, start: number, end: number): boolean {
  // No double prints longer than 25 characters (`-0.0000012345678901234567`).
  if (end - start > 25) return false;
  // Spellings a double never prints, told without converting: a fraction ending in 0 (`1.0`),
  // `E`, or an exponent without its sign (`1e5`; a double prints `1e+21`).
  let fraction = false;
  for (let k = start; k < end; k++) {
    const c = b[k] as number;
    if (c === 0x2e) fraction = true;
    else if (c === 0x45) return false;
    else if (c === 0x65) {
      if (fraction && b[k - 1] === 0x30) return false;
      const sign = b[k + 1];
      if (sign !== 0x2b && sign !== 0x2d) return false;
      fraction = false;
    }
  }
  if (fraction && b[end - 1] === 0x30) return false;
  const lexeme = b.toString('latin1', start, end);
  return String(Number(lexeme)) === lexeme;
}

/**
 * A linear pre-scan of a JSON body, before JSON.parse builds anything. It enforces the structural
 * limits the moment they are crossed (nesting depth, number of values), so a hostile body costs at
 * most one pass over the bytes up to that point, and reports whether any number is spelled in a way
 * a double cannot reproduce (`1e400`, `-0`, `1.0`, 20-digit integers), where they are, so the
 * parser keeps those lexemes as written. It also counts the values and tells whether any string
 * holds a `\u` escape: on a valid body, the parsed value holds as many values exactly when no key
 * was repeated in an object, which is how parse.ts knows the bytes mean what it judged.
 *
 * It does not validate: JSON.parse does that next. On malformed input it may count oddly, but it
 * still visits each byte at most a constant number of times (long strings are skipped with indexOf).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Bytes of a string read one by one before the rest is searched with indexOf. */
const SHORT_STRING = 64;

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
      /** Start and end offsets of each number a double does not spell back the same way. */
      readonly lossy: readonly number[];
      /** Whether a string (or key) holds a `\u` escape. */
      readonly unicodeEscape: boolean;
    }
  | {
      readonly ok: false;
      readonly limit: 'depth' | 'values';
      /** Bytes examined before the limit was crossed (the offending byte included). */
      readonly examined: number;
    };

export function scanJson(b: Buffer, limits: ScanLimits): ScanResult {
  const { maxDepth, maxValues } = limits;
  const n = b.length;
  let depth = 0;
  let values = 0;
  // Numbers that need a closer look, checked once the body is known to be within the limits (so
  // a refused body costs the scan only).
  const candidates: number[] = [];
  let i = 0;
  // The next backslash at or after some offset, searched lazily and only forward, so the searches
  // together read the body once (-1: none left).
  let backslash = -2;
  let unicodeEscape = false;
  while (i < n) {
    const c = b[i] as number;
    if (c === QUOTE) {
      if (++values > maxValues) return { ok: false, limit: 'values', examined: i + 1 };
      // The string ends at the next quote, unless an escape comes first; then walk its bytes. Its
      // first bytes are read one by one (most strings are short: a call to indexOf costs more than
      // reading them), the rest of a long one is searched with indexOf.
      let j = i + 1;
      const stop = j + SHORT_STRING < n ? j + SHORT_STRING : n;
      while (j < stop) {
        const d = b[j] as number;
        if (d === QUOTE || d === BACKSLASH) break;
        j++;
      }
      if (j === stop) {
        const quote = b.indexOf(QUOTE, j);
        if (quote === -1) break;
        if (backslash !== -1 && backslash < j) backslash = b.indexOf(BACKSLASH, j);
        if (backslash === -1 || backslash > quote) {
          i = quote + 1;
          continue;
        }
        j = backslash;
      } else if (b[j] === QUOTE) {
        i = j + 1;
        continue;
      }
      i = j;
      while (i < n) {
        const d = b[i] as number;
        if (d === QUOTE) break;
        if (d === BACKSLASH) {
          if (b[i + 1] === 0x75 /* u */) unicodeEscape = true;
          i += 2;
        } else i++;
      }
      i++;
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
      let j = i + 1;
      while (j < n && isNumberByte(b[j] as number)) j++;
      if (!isPlainInteger(b, i, j)) candidates.push(i, j);
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
  const lossy: number[] = [];
  for (let k = 0; k + 1 < candidates.length; k += 2) {
    const start = candidates[k] as number;
    const end = candidates[k + 1] as number;
    if (!isCanonicalNumber(b, start, end)) lossy.push(start, end);
  }
  return { ok: true, values, lossy, unicodeEscape };
}

function isNumberByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

/** A plain integer of 1 to 15 digits without a leading zero (or `0`): always spelled back alike. */
function isPlainInteger(b: Buffer, start: number, end: number): boolean {
  const from = b[start] === 0x2d ? start + 1 : start;
  const digits = end - from;
  if (digits < 1 || digits > 15) return false;
  if (b[from] === 0x30) return digits === 1 && from === start;
  for (let k = from; k < end; k++) {
    const c = b[k] as number;
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * Whether JSON.stringify of the double this lexeme parses to spells it the same way. Plain integers
 * of up to 15 digits always do (except `-0`); anything else is checked by converting.
 */
function isCanonicalNumber(b: Buffer, start: number, end: number): boolean {
  const negative = b[start] === 0x2d;
  const digits = end - start - (negative ? 1 : 0);
  if (digits >= 1 && digits <= 15) {
    let plain = true;
    for (let k = negative ? start + 1 : start; k < end; k++) {
      const c = b[k] as number;
      if (c < 0x30 || c > 0x39) {
        plain = false;
        break;
      }
    }
    if (plain) {
      const first = b[negative ? start + 1 : start];
      if (first !== 0x30) return true;
      return digits === 1 && !negative; // `0` is canonical; `-0` and `01` are not
    }
  } else if (digits > 16) {
    // Seventeen digits or more: no safe integer, and kept as written even when a double happens to
    // print it the same way (harmless: a kept number is written back byte for byte).
    let plain = true;
    for (let k = negative ? start + 1 : start; k < end && plain; k++) {
      const c = b[k] as number;
      plain = c >= 0x30 && c <= 0x39;
    }
    if (plain) return false;
  }
  // No double prints longer than 24 characters (`-1.2345678901234567e-308`).
  if (end - start > 24) return false;
  const lexeme = b.toString('latin1', start, end);
  return String(Number(lexeme)) === lexeme;
}

/**
 * Where a JSON string ends, for the passes over a request body that follow the pre-scan (splice.ts,
 * place-numbers.ts), read the way the pre-scan reads it: its first bytes one by one (most strings
 * are short: a call to indexOf costs more than reading them), the rest of a long one searched with
 * indexOf, and a string holding an escape walked byte by byte. The next backslash is searched
 * lazily and only forward, so the searches of one body together read it once: one StringEnds per
 * body. scan.ts, which every request body passes through, keeps the same reading inline: through
 * this class the 119-byte tools/call's parse measured 1-9% slower (bench/parse-fuzz.ts).
 */
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Bytes of a string read one by one before the rest is searched with indexOf. */
const SHORT_STRING = 64;

export class StringEnds {
  private readonly body: Buffer;
  /** The next backslash at or after some offset (-1: none left; -2: not searched yet). */
  private backslashAt = -2;
  /** Set by close(): the string held an escape; one of them was a `\u` escape. */
  escaped = false;
  unicode = false;

  constructor(body: Buffer) {
    this.body = body;
  }

  /** The index of the closing quote of the string whose opening quote is at `open`, or -1. */
  close(open: number): number {
    const b = this.body;
    const n = b.length;
    this.escaped = false;
    this.unicode = false;
    let j = open + 1;
    const stop = j + SHORT_STRING < n ? j + SHORT_STRING : n;
    while (j < stop) {
      const d = b[j] as number;
      if (d === QUOTE || d === BACKSLASH) break;
      j++;
    }
    if (j === stop) {
      const quote = b.indexOf(QUOTE, j);
      if (quote === -1) return -1;
      if (this.backslashAt !== -1 && this.backslashAt < j) this.backslashAt = b.indexOf(BACKSLASH, j);
      if (this.backslashAt === -1 || this.backslashAt > quote) return quote;
      j = this.backslashAt;
    } else if (b[j] === QUOTE) return j;
    this.escaped = true;
    while (j < n) {
      const d = b[j] as number;
      if (d === QUOTE) return j;
      if (d === BACKSLASH) {
        if (b[j + 1] === 0x75 /* u */) this.unicode = true;
        j += 2;
      } else j++;
    }
    return -1;
  }
}

/**
 * Where a run of ASCII digits ends, four bytes at a time once it is long: a 4 MiB number (or 10,000
 * of 400 digits) was read one byte at a time, twice (the pre-scan, then the argument walk), at
 * 1 to 2 ns a byte. Short runs, most numbers, are read byte by byte as before.
 */

/** Digits read one by one before the rest of a run is read a word at a time. */
const SHORT_RUN = 16;

/**
 * A view of `b` as 32-bit words, when its bytes are 4-aligned in memory and it is long enough for a
 * run to need one; else undefined (the run is then read byte by byte).
 */
export function wordsOf(b: Uint8Array): Uint32Array | undefined {
  if (b.byteOffset % 4 !== 0 || b.length < 2 * SHORT_RUN) return undefined;
  return new Uint32Array(b.buffer, b.byteOffset, b.length >> 2);
}

/**
 * The index of the first byte at or after `j` that is not an ASCII digit. `words` is wordsOf(b), or
 * undefined to read byte by byte.
 */
export function digitsEnd(b: Uint8Array, j: number, words: Uint32Array | undefined): number {
  const n = b.length;
  const stop = words !== undefined && j + SHORT_RUN < n ? j + SHORT_RUN : n;
  for (; j < stop; j++) {
    const d = b[j] as number;
    if (d < 0x30 || d > 0x39) return j;
  }
  if (j === n || words === undefined) return j;
  for (; (j & 3) !== 0; j++) {
    const d = b[j] as number;
    if (d < 0x30 || d > 0x39) return j;
  }
  // A word is four digits when each byte's high nibble is 3 and adding 6 leaves it 3 (0x3a to 0x3f
  // carry into it); no carry crosses into the next byte.
  for (; j + 4 <= n; j += 4) {
    const x = words[j >> 2] as number;
    if ((x & 0xf0f0f0f0) !== 0x30303030 || ((x + 0x06060606) & 0xf0f0f0f0) !== 0x30303030) break;
  }
  for (; j < n; j++) {
    const d = b[j] as number;
    if (d < 0x30 || d > 0x39) return j;
  }
  return j;
}

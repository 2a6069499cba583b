/**
 * A list of byte offsets kept in one typed array from body to body. A pass over a large body can
 * note hundreds of thousands of offsets (the strings to re-spell of a body of short escaped
 * strings); a fresh array for each body grows through fresh memory, and on this kind of VM every
 * 4 KiB page first touched costs a fault of ~10 µs, more than the pass itself. Kept, the array's
 * pages are touched once per process. Its size is bounded by the body's: a pass notes at most a
 * few offsets per value, and the pre-scan bounds the values (MAX_VALUES).
 *
 * One list per pass, used by one synchronous call at a time: a caller resets it first and is done
 * with it before it returns.
 */
export class Offsets {
  private data = new Int32Array(256);
  length = 0;

  /** Empties the list (its memory is kept). */
  reset(): this {
    this.length = 0;
    return this;
  }

  push(a: number, b: number): void {
    if (this.length + 2 > this.data.length) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = a;
    this.data[this.length++] = b;
  }

  at(k: number): number {
    return this.data[k] as number;
  }
}

/**
 * Audit lines of one event-loop turn, encoded as they come into a pre-allocated chunk outside the
 * JavaScript heap, and taken as one Buffer view at the end of the turn.
 *
 * Lines waiting for the disk are then bytes the garbage collector never copies: a backlog of
 * strings in the young generation is copied at every scavenge it survives, and promoted after two.
 * Each line's JSON string dies the moment it is encoded. A view handed out is never written again:
 * the next lines go after it, and a full chunk is replaced by a fresh one (the old one is freed
 * once the destination has written the views it holds).
 */

/** Bytes per chunk; a longer line gets a chunk of its own size. */
export const CHUNK_BYTES = 64 * 1024;

export class LineBuffer {
  #chunk: Buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  /** Start of the bytes not yet taken. */
  #start = 0;
  /** End of the bytes written. */
  #end = 0;

  /** Encodes `line` (UTF-8) followed by a newline. */
  push(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units).
    const worst = line.length * 3 + 1;
    if (this.#chunk.length - this.#end < worst) {
      const pending = this.#chunk.subarray(this.#start, this.#end);
      this.#chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, worst + pending.length));
      this.#end = pending.copy(this.#chunk, 0);
      this.#start = 0;
    }
    this.#end += this.#chunk.write(line, this.#end, 'utf8');
    this.#chunk[this.#end++] = 0x0a;
  }

  /** Bytes pushed since the last take(). */
  get length(): number {
    return this.#end - this.#start;
  }

  /** The lines pushed since the last take(), as a view (undefined when there are none). */
  take(): Buffer | undefined {
    if (this.#end === this.#start) return undefined;
    const view = this.#chunk.subarray(this.#start, this.#end);
    this.#start = this.#end;
    return view;
  }
}

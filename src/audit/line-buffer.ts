/**
 * Audit lines of one event-loop turn, encoded as they come into a pre-allocated chunk outside the
 * JavaScript heap, and taken as one Buffer view at the end of the turn.
 *
 * Lines waiting for the disk are then bytes the garbage collector never copies: a backlog of
 * strings in the young generation is copied at every scavenge it survives, and promoted after two.
 * A view handed out is never written again: the next lines go after it, and a full chunk is
 * replaced by a fresh one (the old one is freed once the destination has written the views it
 * holds).
 *
 * A line is either a string (push) or written in place by a LineSource (append: the audit line,
 * line.ts, which makes no string of it). A source writes at `at` in `bytes`, asking `room(n)`
 * before it writes n bytes; what it wrote counts only once it returns, so a source that throws
 * half-way leaves no partial line.
 */

/** Bytes per chunk; a longer line, or a longer backlog, gets a larger one. */
export const CHUNK_BYTES = 64 * 1024;

/** Where a LineSource writes: `room(n)` makes space for n bytes at `at` (it may replace `bytes`). */
export interface LineSink {
  bytes: Buffer;
  at: number;
  room(n: number): Buffer;
}

/** Writes one line, newline included, into a sink. */
export interface LineSource {
  writeTo(out: LineSink): void;
}

export class LineBuffer implements LineSink {
  bytes: Buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  /** Where the line being written goes on (from #end). */
  at = 0;
  /** Start of the bytes not yet taken. */
  #start = 0;
  /** End of the lines written. */
  #end = 0;

  room(n: number): Buffer {
    if (this.bytes.length - this.at >= n) return this.bytes;
    // The pending lines and the line being written move to a fresh chunk; views handed out stay.
    // Twice what it must hold: sized to fit, a backlog past CHUNK_BYTES (the disk is slow) would
    // be copied again for the next few bytes asked, and the next.
    const kept = this.bytes.subarray(this.#start, this.at);
    const chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, 2 * (kept.length + n)));
    kept.copy(chunk, 0);
    this.#end -= this.#start;
    this.#start = 0;
    this.at = kept.length;
    this.bytes = chunk;
    return chunk;
  }

  /** Encodes `line` (UTF-8) followed by a newline. */
  push(line: string): void {
    this.at = this.#end;
    // UTF-8 takes at most 3 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units).
    const b = this.room(line.length * 3 + 1);
    this.at += b.write(line, this.at, 'utf8');
    b[this.at++] = 0x0a;
    this.#end = this.at;
  }

  /** Lets `source` write one line (ending with its newline) after the others. */
  append(source: LineSource): void {
    this.at = this.#end;
    source.writeTo(this);
    this.#end = this.at;
  }

  /** Bytes pushed since the last take(). */
  get length(): number {
    return this.#end - this.#start;
  }

  /** The lines pushed since the last take(), as a view (undefined when there are none). */
  take(): Buffer | undefined {
    if (this.#end === this.#start) return undefined;
    const view = this.bytes.subarray(this.#start, this.#end);
    this.#start = this.#end;
    return view;
  }
}

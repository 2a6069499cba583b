/**
 * Bodies the gateway must hold whole (a request body the policy reads, a list response being
 * filtered, the one SSE event being read) cost about their byte size however they arrive: chunks
 * are copied into one buffer that grows geometrically (or is sized once from Content-Length, when
 * its first bytes reserve a fair part of it), never kept as one Buffer per chunk (a 10-byte chunk
 * can pin a 64 KiB socket read). What a body holds is reserved against one process-wide budget
 * (`limits.max_buffered_bytes`) as its bytes arrive (at most about twice what came), never from
 * what its Content-Length announces: a body announced and not sent holds nothing, and the pages of
 * a buffer sized from an announcement are only made resident by the bytes written into them. A body
 * that would go over the budget is refused, so the gateway degrades by refusing, never by running
 * out of memory.
 */

/** What a body reserves its bytes against: the process-wide budget, or a key's share of it. */
export interface Budget {
  /** Takes `n` bytes, or nothing (false) when that would go over. */
  tryReserve(n: number): boolean;
  release(n: number): void;
}

/** The process-wide ceiling on bytes held for bodies. */
export class BufferBudget implements Budget {
  readonly limit: number;
  private usedBytes = 0;
  private peakBytes = 0;

  constructor(limit: number) {
    if (!Number.isSafeInteger(limit) || limit <= 0)
      throw new TypeError('BufferBudget: limit must be a positive integer');
    this.limit = limit;
  }

  /** Takes `n` bytes from the budget, or nothing (false) when that would go over it. */
  tryReserve(n: number): boolean {
    if (this.usedBytes + n > this.limit) return false;
    this.usedBytes += n;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
    return true;
  }

  release(n: number): void {
    this.usedBytes -= n;
    if (this.usedBytes < 0) throw new TypeError('BufferBudget: released more than was reserved');
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.usedBytes;
  }

  /** The most bytes ever reserved at once. */
  get peak(): number {
    return this.peakBytes;
  }
}

/** Why a chunk could not be held. */
export type HoldRefusal = 'too-large' | 'over-budget';

const MIN_CAPACITY = 4096;

/**
 * A buffer is sized from its Content-Length at once only while that is at most this many times
 * what the body has reserved: the pages of an unwritten buffer are not resident, but V8 counts its
 * whole size as external memory (more collections), and an address space has limits too.
 */
const AHEAD = 16;

/**
 * Capacities below this are cut from Node's shared pool (`Buffer.allocUnsafe`, which pools what is
 * under half of `Buffer.poolSize`), as a request body sized from its Content-Length mostly is: a
 * buffer of its own is an ArrayBuffer and a backing store per body, several times the cost of
 * copying a tools/call of a few hundred bytes (bench/body-micro.ts). A held slice pins at most its
 * pool slab, shared with whatever else was cut from it, which is less than the request's own socket
 * and objects; the budget counts the bytes asked for, as before. A body growing without a
 * Content-Length starts at MIN_CAPACITY and gets buffers of its own.
 */
const POOLED_BYTES = 4096;

/**
 * Large buffers given back by release(true) for the next body they fit (a list response of the
 * same catalogue, held again and again). Each one is a Buffer of 256 KiB to 8 MiB that nothing
 * references any more; while idle it is outside the budget. Without this, every held list body is
 * a fresh off-heap allocation that only a garbage collection gives back: at a few hundred KiB per
 * response those collections are full mark-compacts.
 */
const spares: Buffer[] = [];
const SPARES = 2;
const SPARE_MIN_BYTES = 256 * 1024;
const SPARE_MAX_BYTES = 8 * 1024 * 1024;

/** A spare of `capacity` to twice `capacity` bytes (removed from the spares), or undefined. */
function takeSpare(capacity: number): Buffer | undefined {
  if (capacity < SPARE_MIN_BYTES) return undefined;
  for (let k = 0; k < spares.length; k++) {
    const spare = spares[k] as Buffer;
    if (spare.length >= capacity && spare.length <= capacity * 2) {
      spares.splice(k, 1);
      return spare;
    }
  }
  return undefined;
}

/** Drops the spare buffers (an idle gateway gives their memory back); returns the bytes dropped. */
export function dropSpares(): number {
  let bytes = 0;
  for (const spare of spares) bytes += spare.length;
  spares.length = 0;
  return bytes;
}

/** One body being held: append chunks, read the bytes, release once. */
export class BodyBuffer {
  private readonly budget: Budget;
  private readonly max: number;
  /** The announced length, when within `max`: the buffer is sized to it once. */
  private readonly expected: number | undefined;
  private buffer: Buffer | undefined;
  private size = 0;
  /** Bytes of the budget this body holds (at least `size`, at most about twice it). */
  private reserved = 0;

  /**
   * `max`: largest body accepted; `expected`: its announced length (Content-Length), used to size
   * the buffer once, when its first bytes arrive, if it is within `max`.
   */
  constructor(budget: Budget, max: number, expected?: number) {
    this.budget = budget;
    this.max = max;
    this.expected =
      expected !== undefined && Number.isSafeInteger(expected) && expected > 0 && expected <= max
        ? expected
        : undefined;
  }

  /** Copies a chunk in; returns why it was refused (and holds nothing more), or undefined. */
  push(chunk: Uint8Array): HoldRefusal | undefined {
    const needed = this.size + chunk.length;
    if (needed > this.max) return 'too-large';
    if (needed > this.reserved) {
      const cap = this.expected ?? this.max;
      const target = Math.max(needed, Math.min(cap, Math.max(MIN_CAPACITY, this.reserved * 2)));
      if (!this.reserve(target) && !this.reserve(needed)) return 'over-budget';
    }
    if (this.buffer === undefined || needed > this.buffer.length) this.allocate(this.capacityFor(needed));
    (this.buffer as Buffer).set(chunk, this.size);
    this.size = needed;
    return undefined;
  }

  /** Bytes held so far. */
  get length(): number {
    return this.size;
  }

  /** The bytes held (a view: valid until release). */
  bytes(): Buffer {
    return this.buffer === undefined ? Buffer.alloc(0) : this.buffer.subarray(0, this.size);
  }

  /**
   * Gives the reservation back and drops the bytes; safe to call more than once. `reuse`: no view of
   * the bytes is kept anywhere (the caller checked), so the buffer may hold the next body.
   */
  release(reuse = false): void {
    if (this.reserved > 0) this.budget.release(this.reserved);
    const buffer = this.buffer;
    if (
      reuse &&
      buffer !== undefined &&
      buffer.length >= SPARE_MIN_BYTES &&
      buffer.length <= SPARE_MAX_BYTES &&
      spares.length < SPARES
    ) {
      spares.push(buffer);
    }
    this.reserved = 0;
    this.buffer = undefined;
    this.size = 0;
  }

  /** Whether `view` shares memory with the bytes held. */
  holds(view: Uint8Array): boolean {
    return this.buffer !== undefined && view.buffer === this.buffer.buffer;
  }

  /** Holds `capacity` bytes of the budget in all, or nothing more (false). */
  private reserve(capacity: number): boolean {
    if (!this.budget.tryReserve(capacity - this.reserved)) return false;
    this.reserved = capacity;
    return true;
  }

  /**
   * The buffer to hold `needed` bytes in: what is reserved, and never less than twice the buffer it
   * replaces, so a body whose reservations come one chunk at a time (its key near its share) still
   * moves a logarithmic number of times. The announced length instead when it is at most AHEAD times
   * what is reserved (a list response's first 64 KiB read of 300 KiB: one buffer, never moved) or at
   * most twice that step (the last move goes straight to the final size, an idle spare of it
   * included). So a body past its share never gets its announced size for a few bytes counted, and
   * what a body allocates or takes from the spares stays within AHEAD times what it reserves. A
   * body longer than announced (the parsers refuse that framing first) grows towards `max`.
   */
  private capacityFor(needed: number): number {
    const expected = this.expected;
    const cap = expected !== undefined && needed <= expected ? expected : this.max;
    const grown = Math.max(needed, Math.min(cap, Math.max(this.reserved, 2 * (this.buffer?.length ?? 0))));
    if (cap === expected && (expected <= this.reserved * AHEAD || expected <= grown * 2)) return expected;
    return grown;
  }

  /** Moves the bytes held into a buffer of `capacity` bytes. */
  private allocate(capacity: number): void {
    const next =
      capacity < POOLED_BYTES
        ? Buffer.allocUnsafe(capacity)
        : (takeSpare(capacity)?.subarray(0, capacity) ?? Buffer.allocUnsafeSlow(capacity));
    if (this.buffer !== undefined && this.size > 0) this.buffer.copy(next, 0, 0, this.size);
    this.buffer = next;
  }
}

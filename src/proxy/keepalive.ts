/**
 * Keepalive comments for idle SSE streams, from one timer for all of them. A stream that wrote
 * nothing for `keepaliveMs` gets its `keepalive()` called, so an idle stream sends a comment at
 * least every `keepaliveMs` and never more often than `keepaliveMs * (TICKS - 1) / TICKS`.
 *
 * One Timeout per stream (refreshed on every event) cost memory per open stream and a timer-list
 * update per event; here a stream holds two numbers, and an event costs one field store (`touch`).
 * The timer runs only while a stream is registered, and never keeps the process alive.
 *
 * Streams opened together fall due on the same tick: with thousands open, one tick wrote a comment
 * to a quarter of them or more in one go (each write runs the receiver's side of a loopback socket
 * too), holding the event loop for 20–150 ms every few seconds (measured at 5,000 streams), and any
 * request that arrived meanwhile waited for all of them. A tick now writes at most SLICE comments
 * per turn of the event loop and leaves the rest for the next turns, so requests are served between
 * slices.
 */

/** What the wheel needs of a stream. `keepaliveSlot` and `keepaliveTick` belong to the wheel. */
export interface KeepaliveStream {
  /** Index in the wheel, -1 when not registered. */
  keepaliveSlot: number;
  /** The tick of the last write (or keepalive). */
  keepaliveTick: number;
  /** The stream was idle for `keepaliveMs`: send a keepalive if it can (it is touched anyway). */
  keepalive(): void;
}

/** Ticks per keepalive period: how early a keepalive may come (here at most a quarter early). */
export const TICKS = 4;
/** Keepalives written per turn of the event loop (the first slice in the tick itself). */
export const SLICE = 32;

export class KeepaliveWheel {
  private readonly streams: KeepaliveStream[] = [];
  private readonly tickMs: number;
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Streams due for a keepalive, in the order found; those before `next` were served. */
  private due: KeepaliveStream[] = [];
  private next = 0;

  constructor(keepaliveMs: number) {
    if (!(keepaliveMs > 0)) throw new TypeError('KeepaliveWheel: keepaliveMs must be positive');
    this.tickMs = Math.max(1, Math.floor(keepaliveMs / TICKS));
  }

  /** Streams registered. */
  get size(): number {
    return this.streams.length;
  }

  add(stream: KeepaliveStream): void {
    if (stream.keepaliveSlot !== -1) return;
    stream.keepaliveSlot = this.streams.length;
    stream.keepaliveTick = this.tick;
    this.streams.push(stream);
    if (this.timer === undefined) {
      this.timer = setInterval(this.onTick, this.tickMs);
      this.timer.unref();
    }
  }

  /** The stream wrote something: its idle time starts again. */
  touch(stream: KeepaliveStream): void {
    stream.keepaliveTick = this.tick;
  }

  remove(stream: KeepaliveStream): void {
    const slot = stream.keepaliveSlot;
    if (slot === -1) return;
    stream.keepaliveSlot = -1;
    const last = this.streams.pop() as KeepaliveStream;
    if (last !== stream) {
      this.streams[slot] = last;
      last.keepaliveSlot = slot;
    }
    if (this.streams.length === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private readonly onTick = (): void => {
    const tick = ++this.tick;
    const draining = this.next < this.due.length;
    for (let i = this.streams.length - 1; i >= 0; i--) {
      const stream = this.streams[i];
      if (stream === undefined || tick - stream.keepaliveTick < TICKS) continue;
      stream.keepaliveTick = tick;
      this.due.push(stream);
    }
    // A drain still running from the tick before takes the new ones too.
    if (!draining) this.drain();
  };

  /** One slice of the due keepalives; the rest at the next turn. */
  private readonly drain = (): void => {
    const due = this.due;
    const end = Math.min(due.length, this.next + SLICE);
    while (this.next < end) {
      const stream = due[this.next++] as KeepaliveStream;
      // It left while waiting (or during an earlier keepalive of this slice).
      if (stream.keepaliveSlot !== -1) stream.keepalive();
    }
    if (this.next < due.length) {
      setImmediate(this.drain);
      return;
    }
    this.due = [];
    this.next = 0;
  };
}

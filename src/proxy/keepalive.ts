/**
 * Keepalive comments for idle SSE streams, from one timer for all of them. A stream that wrote
 * nothing for `keepaliveMs` gets its `keepalive()` called, so an idle stream sends a comment at
 * least every `keepaliveMs` and never more often than `keepaliveMs * (TICKS - 1) / TICKS`.
 *
 * One Timeout per stream (refreshed on every event) cost memory per open stream and a timer-list
 * update per event; here a stream holds two numbers, and an event costs one field store (`touch`).
 * The timer runs only while a stream is registered, and never keeps the process alive.
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

export class KeepaliveWheel {
  private readonly streams: KeepaliveStream[] = [];
  private readonly tickMs: number;
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;

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
    // Backwards: a stream that leaves during its keepalive swaps in one already visited.
    for (let i = this.streams.length - 1; i >= 0; i--) {
      const stream = this.streams[i];
      if (stream === undefined || tick - stream.keepaliveTick < TICKS) continue;
      stream.keepaliveTick = tick;
      stream.keepalive();
    }
  };
}

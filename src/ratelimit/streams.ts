/**
 * Open GET streams per key. Besides the token a GET takes (rate-limit.ts), a key may hold at most `max` of them
 * open at once. The count lives in this process: with several replicas each one enforces `max` on
 * its own (a key may hold up to replicas × max streams in total). That is deliberate: a stream's
 * slot must be given back when the socket closes, and a shared counter would leak slots whenever a
 * replica dies with streams open.
 */
import { KeyCounter } from './key-counter.ts';

export interface StreamCounter {
  /** Takes a slot for `id`, or returns undefined when `max` are open. The release is idempotent. */
  acquire(id: string, max: number): (() => void) | undefined;
  /** Streams open for `id`. */
  open(id: string): number;
  /** Streams open in total. */
  readonly total: number;
}

export function createStreamCounter(): StreamCounter {
  const counter = new KeyCounter();
  return {
    acquire(id, max) {
      if (!counter.enter(id, max)) return undefined;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        counter.leave(id);
      };
    },
    open: (id) => counter.of(id),
    get total() {
      return counter.total;
    },
  };
}

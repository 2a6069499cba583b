/**
 * Open GET streams per key. Besides the token a GET takes (rate-limit.ts), a key may hold at most `max` of them
 * open at once. The count lives in this process: with several replicas each one enforces `max` on
 * its own (a key may hold up to replicas × max streams in total). That is deliberate: a stream's
 * slot must be given back when the socket closes, and a shared counter would leak slots whenever a
 * replica dies with streams open.
 */

export interface StreamCounter {
  /** Takes a slot for `id`, or returns undefined when `max` are open. The release is idempotent. */
  acquire(id: string, max: number): (() => void) | undefined;
  /** Streams open for `id`. */
  open(id: string): number;
  /** Streams open in total. */
  readonly total: number;
}

export function createStreamCounter(): StreamCounter {
  const counts = new Map<string, number>();
  let total = 0;
  return {
    acquire(id, max) {
      const n = counts.get(id) ?? 0;
      if (n >= max) return undefined;
      counts.set(id, n + 1);
      total++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total--;
        const left = (counts.get(id) ?? 1) - 1;
        if (left > 0) counts.set(id, left);
        else counts.delete(id);
      };
    },
    open(id) {
      return counts.get(id) ?? 0;
    },
    get total() {
      return total;
    },
  };
}

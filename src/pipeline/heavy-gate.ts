/**
 * Large bodies take turns. Parsing and re-serialising a body of several MiB holds the event loop
 * for tens of milliseconds; several arriving together would run back to back while every other
 * key's small request waits behind all of them. Here each body over HEAVY_BYTES waits for the one
 * before it and then for one turn of the event loop, so pending I/O (another key's ping) is served
 * between two large parses: a small request waits for at most about one of them, not for all.
 */

/** Bodies at least this large take turns. */
export const HEAVY_BYTES = 256 * 1024;

export function createHeavyGate(): (bytes: number) => Promise<void> | undefined {
  let tail: Promise<void> = Promise.resolve();
  return function turn(bytes) {
    if (bytes < HEAVY_BYTES) return undefined;
    const mine = tail.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    tail = mine;
    return mine;
  };
}

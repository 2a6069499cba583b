/**
 * The in-process store: a Map of mutable bucket entries, decided synchronously (atomic by
 * construction: nothing else runs between the check and the take). Memory stays bounded: a bucket
 * that has refilled to full is the same as no bucket, so a periodic sweep drops those, and past
 * `maxEntries` the oldest entries are dropped too (which forgives their debt; it takes more
 * distinct identities than `maxEntries` within one refill period to get there).
 */
import type { BucketPolicy } from './bucket.ts';
import { fullInMs, level } from './bucket.ts';
import type { BucketSpec, Costs, Decision, RateLimitStore } from './store.ts';
import { allCover, costAt, summarize } from './store.ts';

export const MEMORY_DEFAULTS = Object.freeze({ maxEntries: 100_000, sweepIntervalMs: 60_000 });

export interface MemoryStoreOptions {
  /** Milliseconds from a clock that should not jump (e.g. `performance.now`). */
  readonly now: () => number;
  readonly maxEntries?: number;
  /** How often full buckets are dropped; 0 disables the timer (call `sweep()` yourself). */
  readonly sweepIntervalMs?: number;
}

export interface MemoryStore extends RateLimitStore {
  consume(buckets: readonly BucketSpec[], costs: Costs, retry?: Costs): Decision;
  /** Drops the buckets that are full again; returns how many remain. */
  sweep(): number;
  /** Number of buckets held. */
  readonly size: number;
}

interface Entry {
  tokens: number;
  updatedMs: number;
  /** When the bucket is full again: from then on the entry is the same as no entry. */
  fullAtMs: number;
}

export function createMemoryStore(options: MemoryStoreOptions): MemoryStore {
  const now = options.now;
  const maxEntries = options.maxEntries ?? MEMORY_DEFAULTS.maxEntries;
  const sweepIntervalMs = options.sweepIntervalMs ?? MEMORY_DEFAULTS.sweepIntervalMs;
  if (typeof now !== 'function') throw new TypeError('createMemoryStore: now must be a function');
  if (!(maxEntries >= 1)) throw new TypeError('createMemoryStore: maxEntries must be at least 1');

  const entries = new Map<string, Entry>();
  // Scratch space for one decision (decisions never interleave: consume is synchronous).
  let found: (Entry | undefined)[] = [];
  let levels = new Float64Array(4);

  const sweep = (): number => {
    const t = now();
    for (const [key, entry] of entries) if (entry.fullAtMs <= t) entries.delete(key);
    return entries.size;
  };

  const makeRoom = (wanted: number): void => {
    if (sweep() + wanted <= maxEntries) return;
    // Still full of debt: drop the oldest (insertion order) down to 90% so this does not run per insert.
    let drop = entries.size + wanted - Math.floor(maxEntries * 0.9);
    for (const key of entries.keys()) {
      if (drop-- <= 0) break;
      entries.delete(key);
    }
  };

  const timer = sweepIntervalMs > 0 ? setInterval(sweep, sweepIntervalMs) : undefined;
  timer?.unref();

  return {
    consume(buckets, costs, retry) {
      const n = buckets.length;
      if (n === 0) throw new TypeError('consume: at least one bucket is required');
      if (levels.length < n) {
        levels = new Float64Array(n);
        found = new Array<Entry | undefined>(n);
      }
      const t = now();
      let missing = 0;
      for (let i = 0; i < n; i++) {
        const spec = buckets[i] as BucketSpec;
        const entry = entries.get(spec.key);
        if (entry === undefined) missing++;
        found[i] = entry;
        levels[i] = level(entry, spec, t);
      }
      const allowed = allCover(buckets, costs, levels);
      if (allowed) {
        if (missing > 0 && entries.size + missing > maxEntries) {
          makeRoom(missing);
          // Levels were read before: an entry dropped here is written back from them below.
          for (let i = 0; i < n; i++) found[i] = entries.get((buckets[i] as BucketSpec).key);
        }
        for (let i = 0; i < n; i++) {
          const spec = buckets[i] as BucketSpec;
          const tokens = (levels[i] as number) - costAt(costs, i);
          let entry = found[i];
          if (entry === undefined) {
            entry = { tokens: 0, updatedMs: t, fullAtMs: 0 };
            entries.set(spec.key, entry);
          }
          store(entry, tokens > 0 ? tokens : 0, t, spec);
        }
      }
      // A refusal changes nothing: the stored state refilled to now is the same bucket.
      const result = summarize(buckets, costs, levels, allowed, retry);
      found.fill(undefined);
      return result;
    },
    sweep,
    get size() {
      return entries.size;
    },
    async close() {
      if (timer) clearInterval(timer);
      entries.clear();
    },
  };
}

function store(entry: Entry, tokens: number, t: number, policy: BucketPolicy): void {
  entry.tokens = tokens;
  if (t > entry.updatedMs) entry.updatedMs = t;
  entry.fullAtMs = entry.updatedMs + fullInMs(tokens, policy);
}

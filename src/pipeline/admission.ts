/**
 * Per-replica memory of keys whose own bucket is known to be empty, so their next request is refused
 * before its body is read or parsed: a key with an empty bucket costs the gateway a header parse,
 * not a 4 MiB parse. A bucket only refills with time, so "empty until T" (learned from a refusal of
 * a one-token request on the key's own bucket) is exact until T, as far as this gateway's requests
 * go; but a shared store's bucket can come back sooner from outside (a Redis restart or eviction,
 * an operator deleting a used-up quota's key, a replica refilling it by other limits), so what is
 * learned is asked again after RECHECK_MS at most: a quota (T = never) would otherwise stay refused on
 * this replica until it restarts, while the others allow it. Bounded: at most MAX_ENTRIES keys are
 * remembered (the oldest are forgotten first, which only costs a parse).
 * Remembered by bucket, not by identity: an OAuth subject's grants may each have a bucket of its own.
 */
import type { Decision } from '../ratelimit/store.ts';
import type { Limits } from '../ratelimit/policy.ts';

const MAX_ENTRIES = 10_000;
/** Longest a learned refusal stands without asking the store: one store call a second per empty key. */
const RECHECK_MS = 1000;

interface Empty {
  readonly untilMs: number;
  /** When to ask the store again (at most RECHECK_MS after learning, at most untilMs). */
  readonly recheckMs: number;
  readonly decision: Decision;
  /**
   * The bucket it was learned of: a reload that gives the key another capacity or refill drops
   * what was learned (compared by value: an OAuth subject's limits are compiled per token).
   */
  readonly bucket: Limits['bucket'];
}

export interface Admission {
  /** The refusal to answer with when the key's bucket is known to be empty now, else undefined. */
  refused(limits: Limits): Decision | undefined;
  /** Learns from a store decision about a request that cost `keyCost` tokens of the key's bucket. */
  learn(limits: Limits, decision: Decision, keyCost: number): void;
}

export function createAdmission(now: () => number): Admission {
  const empty = new Map<string, Empty>();
  return {
    refused(limits) {
      const entry = empty.get(limits.bucket.key);
      if (entry === undefined) return undefined;
      const t = now();
      const left = entry.untilMs - t;
      // A reload may have given the bucket another capacity or refill: ask the store again.
      if (left <= 0 || t >= entry.recheckMs || !sameBucket(entry.bucket, limits.bucket)) {
        empty.delete(limits.bucket.key);
        return undefined;
      }
      return { ...entry.decision, retryAfterMs: left, remaining: 0 };
    },
    learn(limits, decision, keyCost) {
      if (decision.allowed || decision.fallback !== undefined || keyCost !== 1) return;
      if (decision.buckets[decision.index] !== limits.bucket) return;
      if (empty.size >= MAX_ENTRIES) {
        const oldest = empty.keys().next().value;
        if (oldest !== undefined) empty.delete(oldest);
      }
      empty.delete(limits.bucket.key);
      const t = now();
      empty.set(limits.bucket.key, {
        untilMs: t + decision.retryAfterMs,
        recheckMs: t + Math.min(decision.retryAfterMs, RECHECK_MS),
        decision,
        bucket: limits.bucket,
      });
    },
  };
}

function sameBucket(a: Limits['bucket'], b: Limits['bucket']): boolean {
  return a === b || (a.key === b.key && a.capacity === b.capacity && a.refillPerSecond === b.refillPerSecond);
}

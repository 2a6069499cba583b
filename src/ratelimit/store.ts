/**
 * What a rate-limit store is, and the decision it returns. A store takes tokens from one or more
 * buckets at once: all of them, or none (a tool bucket that refuses leaves the key bucket alone).
 * The memory store decides synchronously; the Redis store in one round trip.
 */
import type { BucketPolicy } from './bucket.ts';
import { covers, fullInMs, waitMs, whole } from './bucket.ts';

export interface BucketSpec extends BucketPolicy {
  /** Store key, unique per identity and bucket (the Redis store adds its prefix). */
  readonly key: string;
  /** Policy name for the RateLimit headers, e.g. `default` or `tool:search_*`. */
  readonly name: string;
  /** The tool name or wildcard this bucket is for (undefined for the key's own bucket). */
  readonly tool: string | undefined;
}

/** One cost for every bucket, or one per bucket (a batch: n requests, k of them for one tool). */
export type Costs = number | readonly number[];

export type StoreErrorMode = 'deny' | 'allow';

/** Why a decision came from `on_store_error` instead of the store. */
export type StoreErrorReason = 'store_unavailable' | 'store_timeout' | 'store_error';

export interface Decision {
  readonly allowed: boolean;
  /** The buckets asked (the same array the caller passed). */
  readonly buckets: readonly BucketSpec[];
  /**
   * The bucket the numbers below describe: on refusal the one that needs the longest wait, when
   * allowed the one with the fewest tokens left.
   */
  readonly index: number;
  /** Whole tokens left in that bucket. */
  readonly remaining: number;
  /** 0 when allowed; else ms until every bucket covers its cost (Infinity: never). */
  readonly retryAfterMs: number;
  /** Ms until that bucket is full again (Infinity: never refills). */
  readonly resetMs: number;
  /** Set when the store failed and `on_store_error` decided. */
  readonly fallback: StoreErrorMode | undefined;
  readonly reason: StoreErrorReason | undefined;
}

export interface RateLimitStore {
  /**
   * Takes `costs` tokens from every bucket, or from none. Never throws for a store failure. A
   * refusal's wait is measured for `retry` (default `costs`): what the whole request will cost when
   * it is sent again, when part of it was paid for already (rate-limit.ts's prepay).
   */
  consume(buckets: readonly BucketSpec[], costs: Costs, retry?: Costs): Decision | Promise<Decision>;
  close(): Promise<void>;
}

export function costAt(costs: Costs, i: number): number {
  return typeof costs === 'number' ? costs : (costs[i] ?? 0);
}

/** Whether every bucket covers its cost, given the levels refilled to now. */
export function allCover(buckets: readonly BucketSpec[], costs: Costs, levels: ArrayLike<number>): boolean {
  for (let i = 0; i < buckets.length; i++) if (!covers(levels[i] as number, costAt(costs, i))) return false;
  return true;
}

/**
 * The decision, from each bucket's level refilled to now and before this cost was taken. Used by
 * both stores so that they report alike. A refusal says when every bucket covers `retry`, the cost
 * of the request sent again (a wait for `costs` alone, when a token of it was prepaid and stays
 * taken, sent the client back a token short: refused again, and its prepaid token lost again).
 */
export function summarize(
  buckets: readonly BucketSpec[],
  costs: Costs,
  levels: ArrayLike<number>,
  allowed: boolean,
  retry: Costs = costs,
): Decision {
  let index = 0;
  if (allowed) {
    let least = Infinity;
    for (let i = 0; i < buckets.length; i++) {
      const left = (levels[i] as number) - costAt(costs, i);
      if (left < least) {
        least = left;
        index = i;
      }
    }
    const spec = buckets[index] as BucketSpec;
    const left = least > 0 ? least : 0;
    return decision(allowed, buckets, index, whole(left), 0, fullInMs(left, spec));
  }
  let longest = -1;
  for (let i = 0; i < buckets.length; i++) {
    const wait = waitMs(levels[i] as number, costAt(retry, i), buckets[i] as BucketSpec);
    if (wait > longest) {
      longest = wait;
      index = i;
    }
  }
  const spec = buckets[index] as BucketSpec;
  const tokens = levels[index] as number;
  return decision(allowed, buckets, index, whole(tokens), longest, fullInMs(tokens, spec));
}

/** What `on_store_error` decides when the store cannot answer. */
export function fallbackDecision(
  buckets: readonly BucketSpec[],
  mode: StoreErrorMode,
  reason: StoreErrorReason,
): Decision {
  const allowed = mode === 'allow';
  return {
    allowed,
    buckets,
    index: 0,
    remaining: 0,
    retryAfterMs: allowed ? 0 : 1000,
    resetMs: 0,
    fallback: mode,
    reason,
  };
}

function decision(
  allowed: boolean,
  buckets: readonly BucketSpec[],
  index: number,
  remaining: number,
  retryAfterMs: number,
  resetMs: number,
): Decision {
  return {
    allowed,
    buckets,
    index,
    remaining,
    retryAfterMs,
    resetMs,
    fallback: undefined,
    reason: undefined,
  };
}

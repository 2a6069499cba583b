/**
 * The token bucket, pure: the clock is an argument. A bucket holds up to `capacity` tokens and gains
 * `refillPerSecond` tokens per second (fractions allowed; 0 means a quota that never refills). A
 * request of cost c passes when the bucket holds at least c tokens, and then takes them.
 *
 * Tokens are doubles. A tolerance of EPSILON tokens absorbs the rounding of repeated refills, so that
 * "one token a second" yields exactly one token after exactly 1000 ms. The Redis script
 * (redis-script.ts) repeats this arithmetic line for line; keep the two in step.
 */

export interface BucketPolicy {
  /** Bucket size: the burst allowed (>= 1). */
  readonly capacity: number;
  /** Tokens added per second (>= 0). */
  readonly refillPerSecond: number;
}

export interface BucketState {
  /** Tokens held at `updatedMs`. */
  readonly tokens: number;
  /** When `tokens` was measured (ms, from the same clock as `nowMs`). */
  readonly updatedMs: number;
}

export interface TakeResult {
  readonly allowed: boolean;
  /** The state to keep (refilled to now, less the cost when allowed). */
  readonly state: BucketState;
  /** Whole tokens left after this decision. */
  readonly remaining: number;
  /** 0 when allowed; else ms until the cost is available (Infinity if it never will be). */
  readonly retryAfterMs: number;
  /** Ms until the bucket is full again (0 when full; Infinity if it never refills). */
  readonly resetMs: number;
}

/** Rounding tolerance, in tokens. */
export const EPSILON = 1e-9;

/** Tokens held at `nowMs`. A clock that went backwards adds nothing (and takes nothing away). */
export function level(state: BucketState | undefined, policy: BucketPolicy, nowMs: number): number {
  if (state === undefined) return policy.capacity;
  const elapsed = nowMs - state.updatedMs;
  const tokens = elapsed > 0 ? state.tokens + (elapsed * policy.refillPerSecond) / 1000 : state.tokens;
  return tokens < policy.capacity ? tokens : policy.capacity;
}

/** Whether `tokens` covers `cost`. */
export function covers(tokens: number, cost: number): boolean {
  return tokens + EPSILON >= cost;
}

/** Ms until `tokens` grows to cover `cost`: 0 if it already does, Infinity if it never will. */
export function waitMs(tokens: number, cost: number, policy: BucketPolicy): number {
  if (tokens + EPSILON >= cost) return 0;
  if (cost > policy.capacity + EPSILON || policy.refillPerSecond <= 0) return Infinity;
  // Half the tolerance: at now + wait the bucket covers the cost with EPSILON / 2 to spare.
  return Math.ceil(((cost - tokens - EPSILON / 2) * 1000) / policy.refillPerSecond);
}

/** Ms until `tokens` grows to a full bucket: 0 if full, Infinity if it never refills. */
export function fullInMs(tokens: number, policy: BucketPolicy): number {
  return waitMs(tokens, policy.capacity, policy);
}

/** Whole tokens, forgiving the rounding tolerance. */
export function whole(tokens: number): number {
  const n = Math.floor(tokens + EPSILON);
  return n > 0 ? n : 0;
}

/** One decision on one bucket. */
export function take(
  state: BucketState | undefined,
  policy: BucketPolicy,
  nowMs: number,
  cost: number,
): TakeResult {
  const tokens = level(state, policy, nowMs);
  const updatedMs = state !== undefined && state.updatedMs > nowMs ? state.updatedMs : nowMs;
  if (covers(tokens, cost)) {
    const left = tokens - cost > 0 ? tokens - cost : 0;
    return {
      allowed: true,
      state: { tokens: left, updatedMs },
      remaining: whole(left),
      retryAfterMs: 0,
      resetMs: fullInMs(left, policy),
    };
  }
  return {
    allowed: false,
    state: { tokens, updatedMs },
    remaining: whole(tokens),
    retryAfterMs: waitMs(tokens, cost, policy),
    resetMs: fullInMs(tokens, policy),
  };
}

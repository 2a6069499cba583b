/**
 * Which buckets a request draws on, compiled once per key (or OAuth subject) from the config: the
 * key's own bucket, plus for a tools/call the bucket of the first matching `tools` entry. Exact
 * tool names win over wildcards; among wildcards the one with the most literal characters wins,
 * then the first listed. Plans for single requests are built here once, so the hot path allocates
 * nothing; only a batch that mixes tools builds a plan of its own.
 */
import type { JsonRpcMessage } from '../jsonrpc/message.ts';
import type { BucketSpec, Costs } from './store.ts';
import { compileMatcher } from '../policy/glob.ts';

/** The global `rate_limit` fields this module reads (Config['rate_limit'] fits). */
export interface LimitDefaults {
  readonly capacity: number;
  readonly refill_per_second: number;
  readonly max_streams: number;
  /** Unset: inFlightDefault(upstream.connections), resolved by the caller (steps.ts). */
  readonly max_in_flight?: number | undefined;
}

/** The default `max_in_flight`: a quarter of the upstream connections, at least one. */
export function inFlightDefault(connections: number): number {
  return Math.max(1, Math.floor(connections / 4));
}

export interface ToolLimit {
  readonly capacity: number;
  readonly refill_per_second: number;
}

/** A key's `rate_limit` overrides (KeyConfig['rate_limit'] fits; absent fields take the defaults). */
export interface KeyLimits {
  readonly capacity?: number | undefined;
  readonly refill_per_second?: number | undefined;
  readonly max_streams?: number | undefined;
  readonly max_in_flight?: number | undefined;
  readonly tools?: Readonly<Record<string, ToolLimit>> | undefined;
}

/** The buckets to take from and what each costs. */
export interface Plan {
  readonly buckets: readonly BucketSpec[];
  readonly costs: Costs;
}

export interface Limits {
  /** The identity the buckets belong to. */
  readonly id: string;
  /** Cap on concurrently open streams (GET, subscriptions/listen). */
  readonly maxStreams: number;
  /** Cap on requests (POST, DELETE) at the upstream at once. */
  readonly maxInFlight: number;
  /** The key's own bucket. */
  readonly bucket: BucketSpec;
  /** The plan for one request (pass the tool name for a tools/call). Never allocates. */
  plan(tool?: string): Plan;
  /**
   * The plan for a POST body's messages: one token from the key's bucket per message (requests,
   * notifications and responses alike), and one from a tool's bucket per call to it.
   */
  planMessages(messages: readonly JsonRpcMessage[]): Plan;
  /** The tool bucket a tools/call of `tool` also draws on, if any. */
  toolBucket(tool: string): BucketSpec | undefined;
}

/** The policy name of the key's own bucket in the RateLimit headers. */
export const KEY_POLICY_NAME = 'default';

/**
 * `id` must be unique across principals (e.g. `key:<label>` and `oauth:<issuer> <subject>`); it is
 * part of the store keys (Redis: `<prefix>{<id>}` and `<prefix>{<id>}:tool:<pattern>`, the braces
 * keeping one key's buckets in one Redis Cluster slot).
 *
 * `scope` names limits of their own among several an identity may have at once (an OAuth subject's
 * grant with its own `rate_limit`: the subject's tokens match one grant or another by their
 * scopes): its buckets are `{<id>}:grant:<scope>` and `{<id>}:grant:<scope>:tool:<pattern>`. A
 * bucket is refilled and capped by the limits of the request that asks, so limits that differ must
 * never share one: a token of a generous grant would refill the strict grant's bucket at its own
 * rate (and, on Redis, set it to expire when it is full by the generous capacity, debt and all).
 */
export function compileLimits(id: string, defaults: LimitDefaults, key?: KeyLimits, scope?: string): Limits {
  if (typeof id !== 'string' || id === '') throw new TypeError('compileLimits: id is required');
  // Encoded, so that no scope holds the `:tool:` that begins a tool bucket's part.
  const base =
    scope === undefined ? `{${escapeId(id)}}` : `{${escapeId(id)}}:grant:${encodeURIComponent(scope)}`;
  const bucket: BucketSpec = Object.freeze({
    key: base,
    name: KEY_POLICY_NAME,
    tool: undefined,
    capacity: key?.capacity ?? defaults.capacity,
    refillPerSecond: key?.refill_per_second ?? defaults.refill_per_second,
  });
  const basePlan: Plan = Object.freeze({ buckets: Object.freeze([bucket]), costs: 1 });

  const exact = new Map<string, Plan>();
  const wildcards: {
    readonly match: (name: string) => boolean;
    readonly literal: number;
    readonly plan: Plan;
  }[] = [];
  for (const [pattern, limit] of Object.entries(key?.tools ?? {})) {
    const tool: BucketSpec = Object.freeze({
      key: `${base}:tool:${pattern}`,
      name: `tool:${pattern}`,
      tool: pattern,
      capacity: limit.capacity,
      refillPerSecond: limit.refill_per_second,
    });
    const plan: Plan = Object.freeze({ buckets: Object.freeze([bucket, tool]), costs: 1 });
    if (pattern.includes('*'))
      wildcards.push({ match: compileMatcher([pattern]), literal: pattern.replaceAll('*', '').length, plan });
    else exact.set(pattern, plan);
  }
  wildcards.sort((a, b) => b.literal - a.literal); // stable: ties keep config order

  const planFor = (tool: string | undefined): Plan => {
    if (tool === undefined) return basePlan;
    const found = exact.get(tool);
    if (found !== undefined) return found;
    for (const w of wildcards) if (w.match(tool)) return w.plan;
    return basePlan;
  };

  return Object.freeze({
    id,
    maxStreams: key?.max_streams ?? defaults.max_streams,
    maxInFlight: key?.max_in_flight ?? defaults.max_in_flight ?? inFlightDefault(256),
    bucket,
    plan: planFor,
    toolBucket(tool: string) {
      const plan = planFor(tool);
      return plan === basePlan ? undefined : plan.buckets[1];
    },
    planMessages(messages: readonly JsonRpcMessage[]) {
      if (messages.length === 1) return planFor(toolOf(messages[0] as JsonRpcMessage));
      // A batch: one token per message from the key bucket, one per call from each tool bucket.
      let tools: Map<BucketSpec, number> | undefined;
      for (const m of messages) {
        const plan = planFor(toolOf(m));
        if (plan === basePlan) continue;
        const tool = plan.buckets[1] as BucketSpec;
        tools ??= new Map();
        tools.set(tool, (tools.get(tool) ?? 0) + 1);
      }
      const count = messages.length;
      if (tools === undefined) return count === 1 ? basePlan : { buckets: basePlan.buckets, costs: count };
      const buckets: BucketSpec[] = [bucket];
      const costs: number[] = [count];
      for (const [tool, count] of tools) {
        buckets.push(tool);
        costs.push(count);
      }
      return { buckets, costs };
    },
  });
}

/**
 * The tool a tools/call names, with or without an id: a tools/call sent as a notification is judged
 * and forwarded like a call, so it draws on the tool's bucket too.
 */
function toolOf(m: JsonRpcMessage): string | undefined {
  if (!('method' in m) || m.method !== 'tools/call') return undefined;
  const name = m.params?.name;
  return typeof name === 'string' ? name : undefined;
}

/** Braces and `%` escaped, so the Redis hash tag `{id}` ends where the id does. */
function escapeId(id: string): string {
  return /[{}%]/.test(id) ? id.replace(/[{}%]/g, (c) => `%${c.charCodeAt(0).toString(16)}`) : id;
}

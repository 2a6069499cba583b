/**
 * Prometheus metrics, in the gateway's own registry (never prom-client's global one). `observe` runs
 * once per request when its response has closed, from the same RequestContext as the audit line.
 *
 * Every label value is bounded: decisions are a closed set; rpc_method is a known MCP method,
 * `batch`, `none` (no JSON-RPC message: GET stream, DELETE, unparsable body) or `other`; tool is an
 * exact name from the allowlists (keys' and OAuth grants'), else `other` (never a name learned from the upstream, which could
 * show a scraper a tool some key may not see); the
 * rate-limit key is a configured key label, `oauth` for every OAuth subject, `anonymous`, or `other`.
 *
 * The per-request series are plain numbers (table.ts), counted without allocating and turned into
 * prom-client samples only when /metrics is scraped; the rare ones (pin violations, open streams)
 * stay prom-client metrics.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestContext } from '../pipeline/context.ts';
import { isListen } from '../pipeline/listen.ts';
import type { UpstreamErrorKind } from '../proxy/upstream-error.ts';
import { callDecision, requestDecision } from '../audit/outcome.ts';
import { ANONYMOUS_KEY, LabelSet, NO_KEY, OAUTH_KEY, OTHER } from './labels.ts';
import { CounterFamily, HistogramFamily } from './table.ts';
import type { CounterCell } from './table.ts';

export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]);
export const UPSTREAM_ERROR_KINDS: readonly UpstreamErrorKind[] = Object.freeze([
  'refused',
  'reset',
  'timeout',
  'protocol',
  'auth',
  'other',
]);

export interface MetricsOptions {
  /** Exact tool names from the allowlists, keys' and grants' (wildcards are ignored). */
  readonly knownTools?: Iterable<string>;
  /** Known MCP method names, or policy's KNOWN_METHODS map (lowercase -> canonical; its values are used). */
  readonly knownMethods: Iterable<string> | ReadonlyMap<string, string>;
  /** Exact prompt names from the keys' `prompts` lists (wildcards are ignored). */
  readonly knownPrompts?: Iterable<string>;
  /** The configured key labels. */
  readonly keyLabels?: Iterable<string>;
  /** Also export Node process metrics (CPU, memory, event loop, GC) with the `mcpgate_` prefix. */
  readonly processMetrics?: boolean;
}

export interface Metrics {
  readonly registry: Registry;
  /** Counts one finished request; `mono` is the monotonic clock (ms) when it closed. */
  observe(ctx: RequestContext, mono: number): void;
  upstreamError(kind: UpstreamErrorKind): void;
  streamOpened(): void;
  streamClosed(): void;
  /** After a config reload: new allowlist names and key labels. */
  /** Counts a tool or prompt definition first seen not as pinned (labels: allowlist names only). */
  pinViolation(kind: 'tools' | 'prompts', name: string): void;
  /** After a config reload: new allowlist names and key labels. */
  reconfigure(options: {
    knownTools?: Iterable<string>;
    knownPrompts?: Iterable<string>;
    keyLabels?: Iterable<string>;
  }): void;
  render(): Promise<{ contentType: string; body: string }>;
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  const methods = new Set<string>(
    options.knownMethods instanceof Map
      ? options.knownMethods.values()
      : (options.knownMethods as Iterable<string>),
  );
  const tools = new LabelSet(options.knownTools ?? []);
  const keys = new LabelSet(options.keyLabels ?? []);
  const prompts = new LabelSet(options.knownPrompts ?? []);
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'mcpgate_' });

  // Per-request families: plain numbers, turned into samples at scrape time (table.ts).
  const requests = new CounterFamily(
    'mcpgate_requests_total',
    'Requests to the MCP endpoint, by decision and JSON-RPC method.',
    ['decision', 'rpc_method'],
  ).register(registry);
  const toolCalls = new CounterFamily(
    'mcpgate_tool_calls_total',
    'tools/call messages, by tool and decision.',
    ['tool', 'decision'],
  ).register(registry);
  const rateLimited = new CounterFamily(
    'mcpgate_rate_limited_total',
    'Requests refused by a rate limit, by key label (`oauth` for every OAuth subject).',
    ['key'],
  ).register(registry);
  const upstreamErrors = new CounterFamily(
    'mcpgate_upstream_errors_total',
    'Upstream failures, by kind: refused, reset, timeout, protocol, auth, other.',
    ['kind'],
  ).register(registry);
  const requestDuration = new HistogramFamily(
    'mcpgate_request_duration_seconds',
    'Time from request arrival to response close, by decision (POST and DELETE; streams are not timed: GET, subscriptions/listen).',
    ['decision'],
    DURATION_BUCKETS,
  ).register(registry);
  const upstreamDuration = new HistogramFamily(
    'mcpgate_upstream_duration_seconds',
    "Time from sending a request upstream to the upstream's response headers.",
    [],
    DURATION_BUCKETS,
  ).register(registry);
  const upstreamAll = upstreamDuration.cell();
  const tokenFailures = new CounterFamily(
    'mcpgate_token_failures_total',
    'Bearer tokens refused, by reason (expired, audience, unknown_key, keys_unavailable, ...).',
    ['reason'],
  ).register(registry);
  const toolPinViolations = new Counter({
    name: 'mcpgate_tool_pin_violations_total',
    help: 'Tool definitions seen not as pinned (changed or not in the lockfile), once per new definition.',
    labelNames: ['tool'] as const,
    registers: [registry],
  });
  const promptPinViolations = new Counter({
    name: 'mcpgate_prompt_pin_violations_total',
    help: 'Prompt definitions seen not as pinned (changed or not in the lockfile), once per new definition.',
    labelNames: ['prompt'] as const,
    registers: [registry],
  });
  const openStreams = new Gauge({
    name: 'mcpgate_open_streams',
    help: 'Open streams (GET, and 2026-07-28 subscriptions/listen).',
    registers: [registry],
  });
  /** By error code (a closed set), so the label is not rebuilt per refusal. */
  const tokenCells = new Map<string, CounterCell>();
  // Export zeros so rate() works before the first failure.
  for (const kind of UPSTREAM_ERROR_KINDS) upstreamErrors.cell(kind);

  function methodLabel(ctx: RequestContext): string {
    if (ctx.batch) return 'batch';
    let method = ctx.calls[0]?.rpc_method;
    if (method === undefined) {
      const message = ctx.messages?.[0];
      if (message !== undefined && 'method' in message) method = message.method;
    }
    if (method === undefined) return 'none';
    return methods.has(method) ? method : OTHER;
  }

  function keyLabel(ctx: RequestContext): string {
    const principal = ctx.principal;
    if (principal === undefined) return NO_KEY;
    if (principal.kind === 'oauth') return OAUTH_KEY;
    if (principal.kind === 'anonymous') return ANONYMOUS_KEY;
    return keys.label(principal.name);
  }

  return {
    registry,
    observe(ctx, mono) {
      const decision = requestDecision(ctx);
      requests.cell(decision, methodLabel(ctx)).value++;
      if (ctx.req.method !== 'GET' && !isListen(ctx)) {
        requestDuration.observe(requestDuration.cell(decision), Math.max(0, mono - ctx.startedMono) / 1000);
      }
      if (ctx.upstreamMs !== undefined)
        upstreamDuration.observe(upstreamAll, Math.max(0, ctx.upstreamMs) / 1000);
      const calls = ctx.calls;
      for (let i = 0; i < calls.length; i++) {
        const call = calls[i]!;
        if (call.tool === undefined) continue;
        toolCalls.cell(tools.label(call.tool), ctx.batch ? callDecision(ctx, call) : decision).value++;
      }
      const reason = ctx.reason;
      if (reason !== undefined && isTokenFailure(reason)) {
        let cell = tokenCells.get(reason);
        if (cell === undefined) tokenCells.set(reason, (cell = tokenFailures.cell(tokenReason(reason))));
        cell.value++;
      }
      if (decision === 'rate_limited' && reason !== 'ERR_RATE_LIMIT_STORE')
        rateLimited.cell(keyLabel(ctx)).value++;
    },
    upstreamError(kind) {
      upstreamErrors.cell(UPSTREAM_ERROR_KINDS.includes(kind) ? kind : 'other').value++;
    },
    streamOpened() {
      openStreams.inc();
    },
    streamClosed() {
      openStreams.dec();
    },
    pinViolation(kind, name) {
      if (kind === 'tools') toolPinViolations.labels(tools.label(name)).inc();
      else promptPinViolations.labels(prompts.label(name)).inc();
    },
    reconfigure(next) {
      if (next.knownTools !== undefined) tools.reset(next.knownTools);
      if (next.knownPrompts !== undefined) prompts.reset(next.knownPrompts);
      if (next.keyLabels !== undefined) keys.reset(next.keyLabels);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** The token refusals: ERR_AUTH_TOKEN_* and ERR_INSUFFICIENT_SCOPE (a closed set, so a bounded label). */
function isTokenFailure(code: string): boolean {
  return code.startsWith('ERR_AUTH_TOKEN_') || code === 'ERR_INSUFFICIENT_SCOPE';
}

/** `ERR_AUTH_TOKEN_UNKNOWN_KEY` -> `unknown_key`, `ERR_INSUFFICIENT_SCOPE` -> `insufficient_scope`. */
export function tokenReason(code: string): string {
  return code.replace(/^ERR_(AUTH_TOKEN_)?/, '').toLowerCase();
}

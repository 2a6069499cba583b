/**
 * The audit record: one flat object per HTTP request to the MCP endpoint, built once from the
 * RequestContext when the response has closed. Field names are a stable contract (README "Audit
 * log"). A field with no value for a request is left out of the line, never written as null.
 * This is the record's definition; the gateway writes its line in place (line.ts), the same bytes
 * as JSON.stringify of this object, which test/unit/audit/line.test.ts holds it to.
 *
 * What is never read here: request or response bodies (only the parsed tools/call arguments, and
 * only with `audit.log_arguments`), and request headers other than User-Agent. Keys, tokens,
 * Authorization / Cookie / X-API-Key values therefore cannot reach the audit line.
 *
 * Client-supplied strings (method, tool, prompt, resource, ids, user agent, protocol version) are
 * clipped so a 4 MiB method name cannot become a 4 MiB log line, and written as REDACTED when they
 * look like a key or token (clip.ts); JSON encoding escapes control characters, so no value can start
 * a second line.
 */
import type { CallRecord, Decision, RequestContext } from '../pipeline/context.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import type { JsonRpcId, JsonRpcMessage } from '../jsonrpc/message.ts';
import { createArgumentSanitizer, DEFAULT_ARGUMENT_LIMITS } from './arguments.ts';
import type { ArgumentLimits, Budget, SanitizeArguments } from './arguments.ts';
import { requestDecision, requestReason } from './outcome.ts';
import { isoTime } from './iso-time.ts';
import { loggedUserAgent } from '../auth/user-agent.ts';
import { clip } from './clip.ts';

/** Longest kept value of a client-supplied name (method, tool, prompt, id, user agent). */
export const MAX_NAME = 256;
/** Resource URIs get a little more room. */
export const MAX_URI = 1024;

export interface AuditCall {
  rpc_method?: string | undefined;
  rpc_id?: JsonRpcId | undefined;
  tool?: string | undefined;
  prompt?: string | undefined;
  resource?: string | undefined;
  arguments?: unknown;
  decision: Decision;
  reason?: ErrorCode | undefined;
}

/**
 * The line: the call fields (of the request's only call; a batch lists its calls in `calls`) plus
 * the request's own. The JSON field order is buildAuditRecord's, not this interface's.
 */
export interface AuditRecord extends AuditCall {
  time: string;
  request_id: string;
  key?: string | undefined;
  key_id?: string | undefined;
  sub?: string | undefined;
  client_id?: string | undefined;
  grant?: string | undefined;
  client_ip?: string | undefined;
  http_method?: string | undefined;
  calls?: AuditCall[] | undefined;
  pin_violations?: PinViolation[] | undefined;
  status: number;
  latency_ms: number;
  upstream_ms?: number | undefined;
  bytes_in: number;
  bytes_out: number;
  session?: string | undefined;
  protocol_version?: string | undefined;
  aborted: boolean;
  events_filtered?: number | undefined;
  /** Roots a client's roots answers named that its key may not lend (left out of what the upstream got). */
  roots_withheld?: number | undefined;
  /** The first of them (at most MAX_WITHHELD_LISTED), each clipped to MAX_URI. */
  roots_withheld_uris?: string[] | undefined;
  /** Why the rate-limit store could not decide, when `on_store_error` did. */
  rate_limit_fallback?: string | undefined;
  user_agent?: string | undefined;
}

/** A tool or prompt definition first seen not as pinned, in a response to this request. */
export interface PinViolation {
  tool?: string | undefined;
  prompt?: string | undefined;
  change: 'new' | 'changed' | 'unreadable';
  /** For `changed`: the top-level fields that differ. */
  fields?: readonly string[] | undefined;
}

/** Most pin violations one line lists (a new upstream of thousands of tools must not make a huge line). */
export const MAX_PIN_VIOLATIONS = 50;

export interface AuditRecordOptions {
  /** Set when `audit.log_arguments` is on: copies, redacts and bounds tools/call arguments. */
  readonly sanitizeArguments: SanitizeArguments | undefined;
  /** Characters one line may spend on arguments (all calls of a batch together). */
  readonly argumentBudget: number;
}

/** Compiles the `audit` config section once. */
export function auditRecordOptions(
  config: { readonly log_arguments: boolean; readonly redact: readonly string[] },
  limits: ArgumentLimits = DEFAULT_ARGUMENT_LIMITS,
): AuditRecordOptions {
  return Object.freeze({
    sanitizeArguments: config.log_arguments ? createArgumentSanitizer(config.redact, limits) : undefined,
    argumentBudget: limits.budget,
  });
}

export const NO_ARGUMENTS: AuditRecordOptions = Object.freeze({
  sanitizeArguments: undefined,
  argumentBudget: 0,
});

/**
 * Builds the record. `now` is the wall-clock time the response finished (the line's `time`: lines
 * are written in time order, as log shippers expect); `mono` the monotonic clock at that moment.
 */
export function buildAuditRecord(
  ctx: RequestContext,
  now: number,
  mono: number,
  options: AuditRecordOptions = NO_ARGUMENTS,
): AuditRecord {
  const principal = ctx.principal;
  const isKey = principal !== undefined && principal.kind === 'key';
  const isOauth = principal !== undefined && principal.kind === 'oauth';
  const messages = ctx.messages;
  const ua = loggedUserAgent(ctx.req.headers);

  let single: CallRecord | undefined;
  let calls: AuditCall[] | undefined;
  let args: unknown;
  if (ctx.batch) {
    calls = batchCalls(ctx, options);
  } else {
    single = ctx.calls.length > 0 ? ctx.calls[0] : messageCall(messages?.[0]);
    if (options.sanitizeArguments !== undefined && single !== undefined) {
      args = toolArguments(single, messages?.[0], options.sanitizeArguments, {
        left: options.argumentBudget,
      });
    }
  }

  return {
    time: isoTime(now),
    request_id: ctx.requestId,
    key: isKey ? principal.name : undefined,
    key_id: isKey ? principal.keyId : undefined,
    sub: isOauth ? clip(principal.name, MAX_NAME) : undefined,
    client_id: isOauth ? clip(principal.clientId, MAX_NAME) : undefined,
    grant: isOauth ? principal.grant : undefined,
    client_ip: ctx.clientIp === '' ? undefined : ctx.clientIp,
    http_method: ctx.req.method,
    rpc_method: clip(single?.rpc_method, MAX_NAME),
    rpc_id: id(single?.rpc_id),
    tool: clip(single?.tool, MAX_NAME),
    prompt: clip(single?.prompt, MAX_NAME),
    resource: clip(single?.resource, MAX_URI),
    arguments: args,
    calls,
    pin_violations: pinViolations(ctx),
    decision: requestDecision(ctx),
    reason: requestReason(ctx),
    status: ctx.status,
    latency_ms: round3(mono - ctx.startedMono),
    upstream_ms: ctx.upstreamMs === undefined ? undefined : round3(ctx.upstreamMs),
    bytes_in: ctx.bytesIn,
    bytes_out: ctx.bytesOut,
    session: ctx.session,
    protocol_version: clip(ctx.protocolVersion, 64),
    aborted: ctx.aborted,
    events_filtered: ctx.eventsFiltered,
    roots_withheld: ctx.rootsWithheld?.count,
    roots_withheld_uris: withheldUris(ctx),
    rate_limit_fallback: ctx.rateLimitFallback,
    user_agent: ua === undefined ? undefined : clip(ua, MAX_NAME),
  };
}

export function batchCalls(ctx: RequestContext, options: AuditRecordOptions): AuditCall[] {
  const messages = ctx.messages ?? [];
  const sanitize = options.sanitizeArguments;
  const budget: Budget = { left: options.argumentBudget };
  // Calls are recorded in body order; fall back to the parsed messages if the pipeline stopped first.
  const judged = ctx.calls.length > 0;
  const source: readonly CallRecord[] = judged
    ? ctx.calls
    : (messages.map(messageCall).filter(Boolean) as CallRecord[]);
  const aligned = source.length === messages.length;
  // A message never judged (the request was refused first: rate limited, a bad header) was not
  // allowed: it shares its request's decision and reason.
  const decision = judged ? undefined : requestDecision(ctx);
  const reason = judged ? undefined : requestReason(ctx);
  const out: AuditCall[] = new Array(source.length);
  for (let i = 0; i < source.length; i++) {
    const call = source[i] as CallRecord;
    out[i] = {
      rpc_method: clip(call.rpc_method, MAX_NAME),
      rpc_id: id(call.rpc_id),
      tool: clip(call.tool, MAX_NAME),
      prompt: clip(call.prompt, MAX_NAME),
      resource: clip(call.resource, MAX_URI),
      arguments:
        sanitize !== undefined && aligned ? toolArguments(call, messages[i], sanitize, budget) : undefined,
      decision: decision ?? call.decision,
      reason: judged ? call.reason : reason,
    };
  }
  return out;
}

/** A call for a message the pipeline parsed but did not judge (it stopped before, e.g. rate limited). */
export function messageCall(message: JsonRpcMessage | undefined): CallRecord | undefined {
  if (message === undefined || !('method' in message)) return undefined;
  return {
    rpc_method: typeof message.method === 'string' ? message.method : undefined,
    rpc_id: 'id' in message ? message.id : null,
    decision: 'allow',
  };
}

export function toolArguments(
  call: CallRecord,
  message: JsonRpcMessage | undefined,
  sanitize: SanitizeArguments,
  budget: Budget,
): unknown {
  if (message === undefined || !('method' in message) || message.method !== call.rpc_method) return undefined;
  const isToolCall = call.tool !== undefined || message.method.toLowerCase() === 'tools/call';
  if (!isToolCall) return undefined;
  const params = message.params;
  if (params === null || typeof params !== 'object') return undefined;
  const value = (params as Record<string, unknown>).arguments;
  return value === undefined ? undefined : sanitize(value, budget);
}

export function pinViolations(ctx: RequestContext): PinViolation[] | undefined {
  const reports = ctx.pinReports;
  if (reports === undefined || reports.length === 0) return undefined;
  return reports.slice(0, MAX_PIN_VIOLATIONS).map((r) => ({
    [r.kind === 'tools' ? 'tool' : 'prompt']: clip(r.name, MAX_NAME),
    change: r.change,
    fields: r.fields.length > 0 ? r.fields.slice(0, 20).map((f) => clip(f, 64) as string) : undefined,
  })) as PinViolation[];
}

/** The withheld roots the line names, clipped (a URI may hold a token: clip redacts it). */
export function withheldUris(ctx: RequestContext): string[] | undefined {
  const withheld = ctx.rootsWithheld;
  if (withheld === undefined || withheld.uris.length === 0) return undefined;
  return withheld.uris.map((uri) => clip(uri, MAX_URI) as string);
}

function id(value: JsonRpcId | null | undefined): JsonRpcId | undefined {
  if (value === null || value === undefined) return undefined;
  return typeof value === 'string' ? clip(value, MAX_NAME) : value;
}

/** Milliseconds to 0.001 ms. */
export function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

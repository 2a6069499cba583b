/**
 * How long the upstream may take to send its response headers, by what the request asks. Quick
 * methods (initialize, lists, pings, GET streams) get `upstream.timeout`; a tool call may run for
 * minutes and is answered as plain JSON only at its end (the SDK v2 default for calls without
 * progress), so a tools/call (or tasks/result, which waits for a task's end) gets
 * `upstream.call_timeout`, or the `upstream.tool_timeouts` entry of its tool. Compiled once.
 */
import type { JsonRpcMessage } from '../jsonrpc/message.ts';
import { compileMatcher } from '../policy/glob.ts';

export interface TimeoutSettings {
  /** ms for quick methods (and connecting). */
  readonly timeout: number;
  /** ms for a tools/call or tasks/result. */
  readonly call_timeout: number;
  /** ms per tool name or wildcard; exact names win over wildcards, then the first listed. */
  readonly tool_timeouts: Readonly<Record<string, number>>;
}

/** Methods whose answer may come only when long work is done. */
const LONG_METHODS = new Set(['tools/call', 'tasks/result']);

export type HeadersTimeout = (messages: readonly JsonRpcMessage[] | undefined) => number;

export function compileTimeouts(settings: TimeoutSettings): HeadersTimeout {
  const entries = Object.entries(settings.tool_timeouts);
  const exact = new Map(entries.filter(([p]) => !p.includes('*')));
  const wildcards = entries
    .filter(([p]) => p.includes('*'))
    .map(([p, ms]) => ({ match: compileMatcher([p]), ms }));
  // Per request: no closure for the wildcard search, no iterator over the messages.
  const forTool = (name: unknown): number => {
    if (typeof name !== 'string') return settings.call_timeout;
    const hit = exact.get(name);
    if (hit !== undefined) return hit;
    for (let i = 0; i < wildcards.length; i++) {
      const w = wildcards[i] as (typeof wildcards)[number];
      if (w.match(name)) return w.ms;
    }
    return settings.call_timeout;
  };
  return function headersTimeout(messages) {
    if (messages === undefined) return settings.timeout;
    let long: number | undefined;
    let quick = false;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i] as JsonRpcMessage;
      const method = (message as { method?: unknown }).method;
      if (typeof method !== 'string' || !LONG_METHODS.has(method)) {
        quick = true;
        continue;
      }
      const params = (message as { params?: { name?: unknown } }).params;
      const limit = method === 'tools/call' ? forTool(params?.name) : settings.call_timeout;
      // A batch waits for its slowest member.
      if (long === undefined || limit > long) long = limit;
    }
    if (long === undefined) return settings.timeout;
    return quick ? Math.max(long, settings.timeout) : long;
  };
}

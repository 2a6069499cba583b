/**
 * Which upstream response headers reach the client (the request direction is in
 * request-headers.ts). Decided once per header name; the sets are built at start.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** RFC 9110 §7.6.1 hop-by-hop headers, plus the proxy ones. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/** Upstream headers the client must not see as-is. */
const UPSTREAM_ONLY = new Set(['mcp-session-id', 'date']);

function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  const tokens = text
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  return tokens.length > 0 ? new Set(tokens) : undefined;
}

/** Headers for the client's response: the upstream's minus hop-by-hop; the caller adds its own. */
export function clientResponseHeaders(incoming: IncomingHttpHeaders): Record<string, string | string[]> {
  const listed = connectionTokens(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || UPSTREAM_ONLY.has(name) || name.startsWith('proxy-')) continue;
    if (listed?.has(name)) continue;
    const value = incoming[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

export function isEventStream(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  return value !== undefined && value.toLowerCase().startsWith('text/event-stream');
}

export function isJson(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  return lower.startsWith('application/json') || /^application\/[a-z0-9.+-]*\+json/.test(lower);
}

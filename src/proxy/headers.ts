/**
 * Which headers cross the gateway, in each direction. Decided once per header name; the sets are
 * built at start.
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

/** Client headers the upstream must never see: credentials, and what the gateway sets itself. */
const CLIENT_ONLY = new Set([
  'authorization',
  'x-api-key',
  'cookie',
  'host',
  'content-length',
  'accept-encoding',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
  'mcp-session-id',
  'expect',
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

export interface ForwardInfo {
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  readonly host: string | undefined;
  readonly sessionId: string | undefined;
  readonly contentLength: number | undefined;
}

/**
 * Headers for the upstream request: the client's headers minus hop-by-hop and credentials, the
 * session id the gateway unwrapped, X-Forwarded-*, and the configured static headers last (they
 * win over anything the client sent).
 */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  info: ForwardInfo,
  staticHeaders: Readonly<Record<string, string>>,
): Record<string, string | string[]> {
  const listed = connectionTokens(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    if (HOP_BY_HOP.has(name) || CLIENT_ONLY.has(name) || name.startsWith('proxy-')) continue;
    if (listed?.has(name)) continue;
    const value = incoming[name];
    if (value !== undefined) out[name] = value;
  }
  out['x-forwarded-for'] = info.clientIp;
  out['x-forwarded-proto'] = info.proto;
  if (info.host !== undefined) out['x-forwarded-host'] = info.host;
  if (info.sessionId !== undefined) out['mcp-session-id'] = info.sessionId;
  if (info.contentLength !== undefined) out['content-length'] = String(info.contentLength);
  for (const name in staticHeaders) out[name.toLowerCase()] = staticHeaders[name] as string;
  return out;
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

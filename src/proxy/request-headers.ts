/**
 * The headers of a request toward the upstream: an allowlist. The client's headers reach the
 * upstream only when named here (the MCP ones, `Mcp-Param-*`, User-Agent unless it looks like a
 * credential: auth/user-agent.ts) or in
 * `upstream.forward_headers`; the gateway writes the rest from its own knowledge: X-Forwarded-*,
 * X-Request-Id, the session id it unwrapped, the event id a GET resumes after (opened from the
 * client's sealed Last-Event-ID: integrity/event-ids.ts), the body's Content-Type, `Accept-Encoding: identity`,
 * and the configured `upstream.headers` last. The body's Content-Length is not in the list: undici
 * writes it from the length of the Buffer it sends, the judged bytes, so it cannot disagree with
 * them (a value in the list would only be parsed back and checked against that length). Nothing
 * else the client sent (credentials, identity headers such as True-Client-IP, method overrides,
 * X-Original-URL, hop-by-hop headers) crosses.
 *
 * The forwarded names are end-to-end by definition: they are forwarded as the gateway read them
 * (and judged them, e.g. MCP-Protocol-Version), whatever a Connection header lists.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { HEADER_NAME, HOP_BY_HOP } from './header-names.ts';
import { forwardedUserAgent } from '../auth/user-agent.ts';

/** Client headers forwarded as they are (lower case). */
export const FORWARDED_CLIENT_HEADERS: readonly string[] = Object.freeze([
  'accept',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'user-agent',
]);

/** And every header whose name starts with this (2026-07-28 `Mcp-Param-*`). */
export const PARAM_PREFIX = 'mcp-param-';

/** The gateway writes these itself (toward the upstream): never the client's. */
const GATEWAY_WRITTEN = new Set([
  'host',
  'content-type',
  'content-length',
  'content-encoding',
  'accept-encoding',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-request-id',
  'mcp-session-id',
  'last-event-id',
]);

/** The client's credentials for the gateway: the upstream never sees them. */
const CREDENTIALS = new Set(['authorization', 'proxy-authorization', 'x-api-key', 'cookie']);

/** Headers that make an upstream act on another method or URL than the one the gateway judged. */
const REWRITES = new Set([
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-original-method',
]);

/** What `upstream.headers` may not override: it describes the forwarded body, session or URL. */
const STATIC_FORBIDDEN = new Set([
  'host',
  'content-type',
  'content-length',
  'content-encoding',
  'accept-encoding',
  'mcp-session-id',
]);

/**
 * Why `name` may not be in `upstream.forward_headers` (undefined when it may). The same rule keeps
 * `upstream.headers` from overriding what describes the body or the connection.
 */
export function forwardHeaderProblem(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (!HEADER_NAME.test(name)) return 'is not a valid header name';
  if (CREDENTIALS.has(lower)) return 'is a credential for the gateway: it never reaches the upstream';
  if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-'))
    return 'is a hop-by-hop header: it never crosses the gateway';
  if (GATEWAY_WRITTEN.has(lower)) return 'is written by the gateway itself';
  if (REWRITES.has(lower)) return 'would let a client change the method or URL the gateway judged';
  return undefined;
}

/** Why `name` may not be set by `upstream.headers` (they may set credentials, unlike forward_headers). */
export function staticHeaderProblem(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (!HEADER_NAME.test(name)) return 'is not a valid header name';
  if (HOP_BY_HOP.has(lower)) return 'is a hop-by-hop header: it never crosses the gateway';
  if (STATIC_FORBIDDEN.has(lower))
    return 'is written by the gateway itself (it describes the forwarded body, session or upstream URL)';
  return undefined;
}

export interface RequestHeaderOptions {
  /** `upstream.forward_headers`, checked by the config. */
  readonly forward: readonly string[];
  /** `upstream.headers`, set last. */
  readonly staticHeaders: Readonly<Record<string, string>>;
  /** Host of `public_url`, else the gateway's listen address (known once it listens). */
  readonly forwardedHost: () => string;
  /** Scheme of `public_url`, else `http` (the gateway's own listener). */
  readonly forwardedProto: 'http' | 'https';
}

/**
 * The upstream request's headers as undici takes them: a flat `[name, value, name, value, ...]`
 * list (no object with per-request keys to build and walk). Each name appears once.
 */
export type RequestHeaders = (
  incoming: IncomingHttpHeaders,
  clientIp: string,
  requestId: string,
  /** The upstream's session id (unwrapped by the gateway), when the client sent one. */
  sessionId: string | undefined,
  /** A body is forwarded (POST only): it is JSON, and undici writes its Content-Length. */
  hasBody: boolean,
  /** The upstream's event id a GET resumes after (opened from the client's sealed Last-Event-ID). */
  lastEventId?: string,
) => string[];

export function createRequestHeaders(options: RequestHeaderOptions): RequestHeaders {
  const fixedMap = new Map<string, string>();
  for (const [n, v] of Object.entries(options.staticHeaders)) fixedMap.set(n.toLowerCase(), v);
  // `upstream.headers` are set last and win: a name they set is not also taken from elsewhere.
  const fixed = [...fixedMap].flat();
  const overridden = (name: string) => fixedMap.has(name);
  const listed = [...new Set([...FORWARDED_CLIENT_HEADERS, ...options.forward.map((n) => n.toLowerCase())])];
  for (const name of listed)
    if (forwardHeaderProblem(name) !== undefined) throw new TypeError(`header ${name} cannot be forwarded`);
  // Mcp-Param-* names are all taken by the prefix loop below.
  const names = listed.filter((n) => !n.startsWith(PARAM_PREFIX) && !overridden(n));
  const fixedNames = fixedMap.size === 0 ? undefined : fixedMap;
  const { forwardedHost, forwardedProto } = options;
  const ownFor = !overridden('x-forwarded-for');
  const ownProto = !overridden('x-forwarded-proto');
  const ownHost = !overridden('x-forwarded-host');
  const ownId = !overridden('x-request-id');
  return function requestHeaders(incoming, clientIp, requestId, sessionId, hasBody, lastEventId) {
    const out: string[] = [];
    for (const name of names) {
      const value = name === 'user-agent' ? forwardedUserAgent(incoming) : incoming[name];
      if (value !== undefined) pushValue(out, name, value);
    }
    // 2026-07-28 `Mcp-Param-<name>` headers mirror tool arguments (policy/headers.ts checks them).
    for (const name in incoming) {
      if (name.startsWith(PARAM_PREFIX) && (fixedNames === undefined || !fixedNames.has(name)))
        pushValue(out, name, incoming[name] as string | string[]);
    }
    if (ownFor) out.push('x-forwarded-for', clientIp);
    if (ownProto) out.push('x-forwarded-proto', forwardedProto);
    if (ownHost) out.push('x-forwarded-host', forwardedHost());
    if (ownId) out.push('x-request-id', requestId);
    out.push('accept-encoding', 'identity');
    if (sessionId !== undefined) out.push('mcp-session-id', sessionId);
    if (lastEventId !== undefined) out.push('last-event-id', lastEventId);
    if (hasBody) out.push('content-type', 'application/json');
    for (let i = 0; i < fixed.length; i++) out.push(fixed[i] as string);
    return out;
  };
}

/** A header Node gives as a list (repeated) goes as one line per value, as undici would send it. */
function pushValue(out: string[], name: string, value: string | string[]): void {
  if (typeof value === 'string') out.push(name, value);
  else for (const v of value) out.push(name, v);
}

/**
 * The head of an upstream response, toward the client: an allowlist (the request direction is in
 * request-headers.ts). The client sees `Content-Type`, `Cache-Control`, `Retry-After` on 429 and 503,
 * `Mcp-Session-Id` (translated by the session step) and the names in `upstream.pass_headers`, beside
 * the gateway's own headers. Nothing else the upstream sends crosses: above all not `Location`,
 * `WWW-Authenticate`, `Set-Cookie`, `Server`, `X-Powered-By` or `Access-Control-*`, which describe the
 * upstream (its URL, its own credentials, its cookies, its software, its CORS policy), not the
 * gateway the client talks to.
 *
 * Some responses are refused outright (502), before anything reaches the client:
 * - a redirect (3xx): the gateway follows none, and its Location names the upstream;
 * - 401 or 403: the upstream refused the gateway's own credentials (`upstream.headers`); the client
 *   cannot fix that, so it gets ERR_UPSTREAM_AUTH and the operator a warning (at most one a minute);
 * - a `Content-Encoding` other than identity: the gateway asks for identity and reads every body it
 *   passes (response matching, list filtering), so a compressed one cannot be read, and is not passed
 *   on unread; decoding it would add a decompression bomb to guard for no upstream that needs it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../jsonrpc/errors.ts';
import { HEADER_NAME, HOP_BY_HOP } from './header-names.ts';

/** Upstream headers always passed (lower case). */
export const PASSED_RESPONSE_HEADERS: readonly string[] = Object.freeze(['content-type', 'cache-control']);
/** Passed only with these statuses. */
const RETRY_AFTER_STATUSES = new Set([429, 503]);

/** They describe the upstream, not the gateway: never passed, not even when configured. */
const UPSTREAM_ONLY = new Set([
  'location',
  'www-authenticate',
  'set-cookie',
  'set-cookie2',
  'server',
  'x-powered-by',
]);

/** The gateway writes these itself toward the client. */
const GATEWAY_WRITTEN = new Set([
  'content-length',
  'content-encoding',
  'mcp-session-id',
  'x-request-id',
  'date',
  'retry-after',
  'ratelimit',
  'ratelimit-policy',
  'x-accel-buffering',
]);

/** Why `name` may not be in `upstream.pass_headers` (undefined when it may). */
export function passHeaderProblem(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (!HEADER_NAME.test(name)) return 'is not a valid header name';
  if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-'))
    return 'is a hop-by-hop header: it never crosses the gateway';
  if (UPSTREAM_ONLY.has(lower) || lower.startsWith('access-control-'))
    return 'describes the upstream (its URL, credentials, cookies, software or CORS policy): it never reaches the client';
  if (GATEWAY_WRITTEN.has(lower)) return 'is written by the gateway itself';
  return undefined;
}

export interface ResponseHeadOptions {
  /** `upstream.pass_headers`, checked by the config. */
  readonly pass: readonly string[];
  /** Tells the operator the upstream refused the gateway's credentials (rate-limited here). */
  readonly warn: (fields: object, message: string) => void;
  /** Monotonic ms. */
  readonly now: () => number;
}

export interface ResponseHead {
  /** The error to answer with instead of this response, or undefined to pass it on. */
  refusal(status: number, upstream: IncomingHttpHeaders): GatewayError | undefined;
  /** The upstream headers the client may see (the caller adds the gateway's own). */
  headers(status: number, upstream: IncomingHttpHeaders): Record<string, string | string[]>;
}

/** How often the "upstream refused the gateway's credentials" warning is logged at most. */
export const AUTH_WARNING_EVERY_MS = 60_000;

export function createResponseHead(options: ResponseHeadOptions): ResponseHead {
  for (const name of options.pass) {
    const problem = passHeaderProblem(name);
    if (problem !== undefined) throw new TypeError(`upstream.pass_headers: ${name} ${problem}`);
  }
  const passed = [...new Set([...PASSED_RESPONSE_HEADERS, ...options.pass.map((n) => n.toLowerCase())])];
  let warnedAt = -Infinity;
  let suppressed = 0;

  function warnRefused(status: number): void {
    const now = options.now();
    if (now - warnedAt < AUTH_WARNING_EVERY_MS) {
      suppressed++;
      return;
    }
    warnedAt = now;
    options.warn(
      { upstream_status: status, suppressed },
      `the upstream answered ${status}: it refused the gateway's own credentials (upstream.headers); clients get 502`,
    );
    suppressed = 0;
  }

  return {
    refusal(status, upstream) {
      if (status >= 300 && status < 400) {
        return new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'upstream sent a redirect' });
      }
      if (status === 401 || status === 403) {
        warnRefused(status);
        return new GatewayError('ERR_UPSTREAM_AUTH');
      }
      const encoding = upstream['content-encoding'];
      if (encoding !== undefined && !isIdentity(encoding)) {
        return new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'upstream sent a compressed body' });
      }
      return undefined;
    },
    headers(status, upstream) {
      const connection = upstream.connection;
      const out: Record<string, string | string[]> = {};
      for (let i = 0; i < passed.length; i++) {
        const name = passed[i] as string;
        const value = upstream[name];
        if (value === undefined || (connection !== undefined && listsToken(connection, name))) continue;
        out[name] = value;
      }
      const retryAfter = upstream['retry-after'];
      if (retryAfter !== undefined && RETRY_AFTER_STATUSES.has(status)) out['retry-after'] = retryAfter;
      return out;
    },
  };
}

function isIdentity(value: string | string[]): boolean {
  const text = Array.isArray(value) ? value.join(',') : value;
  return text.split(',').every((token) => {
    const t = token.trim().toLowerCase();
    return t === '' || t === 'identity';
  });
}

/**
 * Whether a Connection header lists `name` (lower case, a token): the comma-separated elements,
 * trimmed as String#trim would and compared case-insensitively, scanned in place.
 */
export function listsToken(value: string | string[], name: string): boolean {
  if (typeof value !== 'string') {
    for (const v of value) if (listsToken(v, name)) return true;
    return false;
  }
  const n = value.length;
  let at = 0;
  while (at <= n) {
    let end = value.indexOf(',', at);
    if (end === -1) end = n;
    let start = at;
    let stop = end;
    while (start < stop && isSpace(value.charCodeAt(start))) start++;
    while (stop > start && isSpace(value.charCodeAt(stop - 1))) stop--;
    if (stop - start === name.length && sameToken(value, start, name)) return true;
    at = end + 1;
  }
  return false;
}

/** The characters String#trim removes that a header value can hold (Latin-1). */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0;
}

/** `value` at `start` equals the lower-case ASCII `name`, ignoring ASCII case. */
function sameToken(value: string, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    let c = value.charCodeAt(start + i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== name.charCodeAt(i)) return false;
  }
  return true;
}

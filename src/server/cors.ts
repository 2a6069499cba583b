/**
 * CORS for browser clients (`cors.allowed_origins`, default none). The gateway answers the
 * preflight itself and adds its own Access-Control-* headers to every response to an allowed
 * origin, errors included; an upstream's Access-Control-* headers never pass. Any route can use it
 * (the MCP endpoint, a well-known document): `headersFor` for a response, `preflight` for OPTIONS.
 * A request whose Origin is not allowed is refused before this is reached (see pipeline/site.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Request headers a browser client of the MCP endpoint may send. */
const ALLOWED_REQUEST_HEADERS = [
  'Authorization',
  'X-API-Key',
  'Content-Type',
  'Accept',
  'MCP-Protocol-Version',
  'Mcp-Session-Id',
  'Last-Event-ID',
  'Mcp-Method',
  'Mcp-Name',
];

/** Response headers a browser client may read (beyond the CORS-safelisted ones). */
const EXPOSED = 'Mcp-Session-Id, WWW-Authenticate, RateLimit, RateLimit-Policy, Retry-After, X-Request-Id';
const METHODS = 'GET, POST, DELETE';
/** How long a browser may cache a preflight answer (seconds). */
const MAX_AGE = '600';

export interface Cors {
  /** Whether `origin` (an Origin header value) is in `cors.allowed_origins`. */
  allows(origin: string | undefined): boolean;
  /** The headers for a response to `origin`, or undefined when it gets none. Frozen, shared. */
  headersFor(origin: string | undefined): Readonly<Record<string, string>> | undefined;
  /**
   * Answers a CORS preflight (OPTIONS with Access-Control-Request-Method from an allowed origin)
   * with 204 and returns true; returns false (and writes nothing) for any other request.
   */
  preflight(req: IncomingMessage, res: ServerResponse): boolean;
  /**
   * Replaces an upstream's Access-Control-* headers (and adds Origin to Vary) with the gateway's for
   * this request, in a header object about to be written.
   */
  decorate(headers: Record<string, string | string[]>, origin: string | undefined): void;
}

/** `https://App.example.com:443/` -> `https://app.example.com`, or undefined when not an http(s) origin. */
export function normalizeOrigin(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.search || url.hash || url.pathname !== '/') return undefined;
  return url.origin;
}

export function createCors(
  allowedOrigins: readonly string[],
  extraRequestHeaders: readonly string[] = [],
): Cors {
  const headersByOrigin = new Map<string, Readonly<Record<string, string>>>();
  for (const value of allowedOrigins) {
    const origin = normalizeOrigin(value);
    if (origin === undefined) throw new TypeError(`not an http(s) origin: ${value}`);
    headersByOrigin.set(
      origin,
      Object.freeze({
        'access-control-allow-origin': origin,
        'access-control-expose-headers': EXPOSED,
        vary: 'Origin',
      }),
    );
  }
  const allowHeaders = [...ALLOWED_REQUEST_HEADERS, ...extraRequestHeaders].join(', ');
  const headersFor = (origin: string | undefined) =>
    origin === undefined || headersByOrigin.size === 0 ? undefined : headersByOrigin.get(origin);

  return {
    allows: (origin) => headersFor(origin) !== undefined,
    headersFor,
    preflight(req, res) {
      if (req.method !== 'OPTIONS') return false;
      const headers = headersFor(req.headers.origin);
      if (headers === undefined || req.headers['access-control-request-method'] === undefined) return false;
      res.statusCode = 204;
      for (const name in headers) res.setHeader(name, headers[name] as string);
      res.setHeader('access-control-allow-methods', METHODS);
      res.setHeader(
        'access-control-allow-headers',
        allowHeaders + mcpParams(req.headers['access-control-request-headers']),
      );
      res.setHeader('access-control-max-age', MAX_AGE);
      res.setHeader('vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
      res.end();
      return true;
    },
    decorate(headers, origin) {
      for (const name in headers) if (name.startsWith('access-control-')) delete headers[name];
      const mine = headersFor(origin);
      if (mine === undefined) return;
      for (const name in mine) {
        if (name === 'vary' && headers.vary !== undefined) headers.vary = `${String(headers.vary)}, Origin`;
        else headers[name] = mine[name] as string;
      }
    },
  };
}

/** The 2026-07-28 `Mcp-Param-*` headers a preflight asks for (they cannot be listed in advance). */
function mcpParams(requested: string | undefined): string {
  if (requested === undefined) return '';
  let out = '';
  for (const name of requested.split(',')) {
    const trimmed = name.trim();
    if (/^mcp-param-[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(trimmed)) out += `, ${trimmed}`;
  }
  return out;
}

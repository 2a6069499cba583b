/**
 * The listener's routing: reserved paths (health, readiness, metrics, well-known documents) are
 * answered by the gateway and never proxied; the MCP path goes to the pipeline; anything else 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody } from '../jsonrpc/message.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import { closeIfBodyUnread, NO_STORE, writeJson } from '../pipeline/respond.ts';
import type { HostRule } from '../pipeline/site.ts';
import type { Refuse } from './client-error.ts';
import { trackQueued } from './connect.ts';

export type Route = (req: IncomingMessage, res: ServerResponse) => void;

export interface Routes {
  /** The MCP endpoint and its handler (absent on a listener that serves only reserved paths). */
  readonly mcp?: { readonly path: string; readonly route: Route };
  /** Exact-path reserved routes, GET/HEAD only (and OPTIONS for a route marked `preflight: true`). */
  readonly reserved: ReadonlyMap<string, Route>;
  /** The Host rule (DNS rebinding) for reserved routes; absent when every Host is served. */
  readonly hostAllowed?: HostRule | undefined;
  /** Reserved paths served to any Host (health probes arrive with an IP address as Host). */
  readonly probes?: ReadonlySet<string>;
  /**
   * Refuses what cannot be routed: a target that is not a path (the absolute-form
   * `POST http://host/mcp`, the asterisk-form `OPTIONS *`), an HTTP/1.1 request without Host, one
   * with several Host lines. Absent (a listener of reserved paths only): 404, Node's own 400 for a
   * missing Host, and a plain 400 for several.
   */
  readonly refuse?: Refuse;
}

export function createRouter(routes: Routes): Route {
  const { reserved, hostAllowed, probes, refuse } = routes;
  const mcpPath = routes.mcp?.path;
  const mcp = routes.mcp?.route;
  return function route(req, res) {
    trackQueued(req, res);
    const url = req.url ?? '/';
    if (refuse !== undefined) {
      if (url.charCodeAt(0) !== 0x2f)
        return refuse(req, res, 'the request target must be a path (origin-form), not a URL');
      if (req.headers.host === undefined && req.httpVersionMinor === 1 && req.httpVersionMajor === 1)
        return refuse(req, res, 'an HTTP/1.1 request needs a Host header');
    }
    // Node keeps the first of several Host lines and drops the rest: the Host rule judged one name
    // while a component in front of the gateway may have taken another. RFC 9112 section 3.2: a
    // request with more than one Host line gets 400 (on a listener of reserved paths too).
    if (hostLines(req.rawHeaders) > 1) {
      const message = 'a request carries one Host header';
      if (refuse !== undefined) return refuse(req, res, message);
      return plainError(
        res,
        new GatewayError('ERR_INVALID_REQUEST', { message: `invalid request: ${message}` }),
      );
    }
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    // Only a POST to the MCP path reads a body; any other answer would leave one unread, and
    // Node would read it to its end to keep the connection (closeIfBodyUnread).
    if (mcp !== undefined && path === mcpPath) {
      if (req.method !== 'POST') closeIfBodyUnread(res);
      return mcp(req, res);
    }
    const special = reserved.get(path);
    if (special !== undefined) {
      closeIfBodyUnread(res);
      if (hostAllowed !== undefined && !probes?.has(path) && !hostAllowed(req.headers.host))
        return plainError(res, new GatewayError('ERR_HOST_DENIED'));
      const preflight = req.method === 'OPTIONS' && (special as { preflight?: boolean }).preflight === true;
      if (req.method !== 'GET' && req.method !== 'HEAD' && !preflight)
        return plainError(
          res,
          new GatewayError('ERR_METHOD_NOT_ALLOWED', { headers: { allow: 'GET, HEAD' } }),
        );
      return special(req, res);
    }
    plainError(res, new GatewayError('ERR_NOT_FOUND'));
  };
}

/** How many header lines are named Host (any case). */
function hostLines(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

export function plainError(res: ServerResponse, err: GatewayError): void {
  writeJson(res, err.status, errorBody(null, err.rpcCode, err.message), err.headers);
}

export function sendPlainJson(res: ServerResponse, status: number, value: unknown): void {
  writeJson(res, status, JSON.stringify(value), NO_STORE);
}

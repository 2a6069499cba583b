/**
 * The listener's routing: reserved paths (health, readiness, metrics, well-known documents) are
 * answered by the gateway and never proxied; the MCP path goes to the pipeline; anything else 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody } from '../jsonrpc/message.ts';
import { GatewayError } from '../jsonrpc/errors.ts';

export type Route = (req: IncomingMessage, res: ServerResponse) => void;

export interface Routes {
  readonly mcpPath: string;
  readonly mcp: Route;
  /** Exact-path reserved routes, GET/HEAD only. */
  readonly reserved: ReadonlyMap<string, Route>;
}

export function createRouter(routes: Routes): Route {
  const { mcpPath, mcp, reserved } = routes;
  return function route(req, res) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === mcpPath) return mcp(req, res);
    const special = reserved.get(path);
    if (special !== undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return plainError(
          res,
          new GatewayError('ERR_METHOD_NOT_ALLOWED', { headers: { allow: 'GET, HEAD' } }),
        );
      return special(req, res);
    }
    plainError(res, new GatewayError('ERR_NOT_FOUND'));
  };
}

export function plainError(res: ServerResponse, err: GatewayError): void {
  const body = errorBody(null, err.rpcCode, err.message);
  res.statusCode = err.status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', Buffer.byteLength(body));
  if (err.headers) for (const name in err.headers) res.setHeader(name, err.headers[name] as string);
  res.end(body);
}

export function sendPlainJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.setHeader('cache-control', 'no-store');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

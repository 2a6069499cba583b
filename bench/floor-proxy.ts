/**
 * The floor: the least a Node proxy built on this stack (node:http in front, an undici Pool behind)
 * does per request, with none of mcpgate's work: no parsing, no auth, no policy, no audit, no
 * metrics, no header rules beyond the MCP ones. It reads the body, dispatches it, and answers with
 * the status, the content type, the session id and the body in one write.
 *
 * It is not a product and not a target: the bench runs it beside mcpgate so the report can say how
 * much of the gap to a direct connection is the stack itself (two HTTP hops in one Node process)
 * and how much is mcpgate's. Run `node bench/floor-proxy.ts --upstream URL [--port 0]`; prints
 * `{"port":N}`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '0' }, upstream: { type: 'string' } },
});
if (values.upstream === undefined) throw new Error('--upstream URL is required');
const upstream = new URL(values.upstream);
const pool = new Pool(upstream.origin, { connections: 256 });
const FORWARDED = ['content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version'] as const;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const headers: string[] = [];
    for (const name of FORWARDED) {
      const value = req.headers[name];
      if (typeof value === 'string') headers.push(name, value);
    }
    const body = chunks.length === 0 ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const out: Buffer[] = [];
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(_controller, status, upstreamHeaders) {
        res.statusCode = status;
        for (const name of ['content-type', 'mcp-session-id']) {
          const value = upstreamHeaders[name];
          if (value !== undefined) res.setHeader(name, value);
        }
      },
      onResponseData(_controller, chunk) {
        out.push(chunk);
      },
      onResponseEnd() {
        res.end(out.length === 1 ? out[0] : Buffer.concat(out));
      },
      onResponseError() {
        if (!res.headersSent) res.statusCode = 502;
        res.end();
      },
    };
    pool.dispatch({ method: req.method as 'POST', path: upstream.pathname, headers, body }, handler);
  });
});
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));

/** Starts an HTTP listener tuned for a proxy: long keep-alive, no request timeout on streams. */
import { lookup } from 'node:dns/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { isIP } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Route } from './routes.ts';

/**
 * The address a listener on `host` binds, looked up as Node's listen() would look it up (an IP
 * literal is kept). The Host rule (DNS rebinding) is decided on it, and the listener is started on
 * it: `127.1`, `0x7f.0.0.1` or a name in /etc/hosts bind loopback as surely as `127.0.0.1` does.
 */
export async function bindAddress(host: string): Promise<string> {
  return isIP(host) !== 0 ? host : (await lookup(host)).address;
}

/**
 * `routerChecksHost`: the route refuses an HTTP/1.1 request without Host itself, with an audit line
 * (routes.ts `refuse`); otherwise Node answers it 400.
 */
export async function listen(
  route: Route,
  host: string,
  port: number,
  routerChecksHost = false,
): Promise<{ server: Server; url: string }> {
  const server = createServer(
    {
      keepAliveTimeout: 65_000,
      headersTimeout: 20_000,
      // Time to receive a whole request (not the response: SSE streams are unaffected).
      requestTimeout: 60_000,
      maxHeaderSize: 16 * 1024,
      noDelay: true,
      requireHostHeader: !routerChecksHost,
    },
    route,
  );
  // `Expect: 100-continue` is the route's to answer (Node would send 100 Continue at once): the MCP
  // pipeline invites a body only once the request has been authenticated and has paid for it.
  server.on('checkContinue', route);
  // So is any other `Expect` (Node would answer 417 itself, unaudited, and keep the connection):
  // the MCP endpoint refuses it with an audit line, other paths answer as if it were absent.
  server.on('checkExpectation', route);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { server, url: `http://${shownHost}:${address.port}` };
}

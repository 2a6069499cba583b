/**
 * Review of the operator's surface: reserved routes (/metrics, /healthz, /readyz), the listeners'
 * Host rule, the metrics, the CLI and the config. Each `failed before:` test shows an attack that
 * worked before its fix; `holds:` tests pin a defence that would be easy to lose.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { keyedConfig, startRawUpstream } from '../helpers/raw-http.ts';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { freePort } from '../helpers/net.ts';

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request to `base` (the gateway's URL) with exactly these headers (Host included). */
function send(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  const u = new URL(base);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port: Number(u.port), method, path, headers, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.end(body);
  });
}

const PING = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });

function mcpHeaders(host: string, secret: string): Record<string, string> {
  return {
    host,
    authorization: `Bearer ${secret}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'content-length': String(PING.length),
  };
}

/**
 * A listener on loopback is guarded against DNS rebinding by the Host rule, "on a loopback
 * listener (127.0.0.0/8, ::1, localhost)". The rule was decided on the configured spelling of the
 * address, so `127.1`, `0x7f.0.0.1`, `2130706433` or `[0:0:0:0:0:0:0:1]` (which bind 127.0.0.1 and
 * ::1 exactly as the usual spellings do) turned it off: a page on a rebound name reached the
 * upstream with the victim's session and read /metrics, on the main listener and on metrics.listen.
 */
describe('the Host rule follows the address a listener binds, not its spelling', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: RawUpstream;
  before(async () => {
    upstream = await startRawUpstream();
  });
  after(async () => {
    await upstream?.close();
  });

  for (const spelling of ['127.1', '0x7f.0.0.1', '2130706433', '[0:0:0:0:0:0:0:1]', '[::ffff:127.0.0.1]']) {
    it(`failed before: a listener on ${spelling} served a rebound Host: the MCP endpoint and /metrics`, async () => {
      const metricsPort = await freePort();
      const gateway: TestGateway = await startTestGateway(
        keyedConfig(upstream.url, secret, {
          extra: { metrics: { listen: `${spelling}:${metricsPort}` } },
        }),
        {},
        { listen: `${spelling}:0` },
      );
      try {
        const posts = upstream.state.posts;
        const rebound = 'attacker.example';
        const mcp = await send(gateway.url, 'POST', '/mcp', mcpHeaders(rebound, secret), PING);
        assert.equal(mcp.status, 403, 'the MCP endpoint refuses a foreign Host');
        assert.equal((JSON.parse(mcp.body) as { error: { code: number } }).error.code, -32600);
        assert.equal(upstream.state.posts, posts, 'nothing reached the upstream');
        const line = gateway.auditLines.at(-1);
        assert.equal(line?.reason, 'ERR_HOST_DENIED');
        const metrics = await send(gateway.runtime.metricsUrl!, 'GET', '/metrics', { host: rebound });
        assert.equal(metrics.status, 403, 'metrics.listen refuses a foreign Host');
        assert.doesNotMatch(metrics.body, /mcpgate_/);
        // The loopback names are served as before.
        const own = await send(gateway.url, 'POST', '/mcp', mcpHeaders('localhost', secret), PING);
        assert.equal(own.status, 200);
        const scrape = await send(gateway.runtime.metricsUrl!, 'GET', '/metrics', { host: 'localhost' });
        assert.equal(scrape.status, 200);
      } finally {
        await gateway.close(100);
      }
    });
  }
});

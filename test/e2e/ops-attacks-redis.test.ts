/**
 * Attack review of the operations surface, with `rate_limit.backend: redis` (a real redis-server).
 * Each describe block is one attack; the comment above it says what the README promises and what
 * the gateway did.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer } from 'node:net';
import type { Server as TcpServer, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import type { RedisServer } from '../helpers/redis-server.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startAuthServer, startOAuthGateway } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';

/** An upstream that answers every JSON-RPC request with an empty result. */
async function startUpstream(): Promise<{ url: string; posts: () => number; close(): Promise<void> }> {
  let posts = 0;
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      posts++;
      const message = JSON.parse(text || '{}') as { id?: string };
      if (message.id === undefined) return void res.writeHead(202).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    posts: () => posts,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const ping = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });

/**
 * Attack: two OAuth subjects sharing one Redis bucket. README ("OAuth 2.1", configuration
 * reference): "each `iss` + `sub` has its own buckets". The bucket's Redis key holds the subject as
 * a JavaScript string, and ioredis sends it as UTF-8, where every lone surrogate becomes U+FFFD: the
 * subjects `x\uD800`, `x\uDC00` and `x\uFFFD` are three principals to the gateway (and to the memory
 * store) but one Redis key. A subject spends the bucket of the others (capacity 1 here: the second
 * subject's very first request is refused with 429). The same lossy encoding reaches every HMAC
 * keyed by the binding id (`createHmac().update(string)`), so session ids and event seals made for
 * one of these subjects verify for the others too.
 * Fix: refuse a token whose `iss` or `sub` is not well-formed Unicode (`String.prototype.isWellFormed`,
 * ERR_AUTH_TOKEN_CLAIMS) in verify.ts, or escape lone surrogates in compileLimits' id (as `{`, `}`
 * and `%` are) and in the binding id.
 */
describe('attack: OAuth subjects that differ only by a lone surrogate share a Redis bucket', () => {
  let redis: RedisServer;
  let auth: TestAuthServer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let gateway: TestGateway;
  before(async () => {
    [redis, auth, upstream] = await Promise.all([startRedisServer(), startAuthServer(), startUpstream()]);
    gateway = await startOAuthGateway(upstream.url, auth.issuer, auth.jwksUri, [
      'rate_limit:',
      '  capacity: 1',
      '  refill_per_second: 0.001',
      '  backend: redis',
      '  redis:',
      `    url: ${redis.url}`,
      '    timeout: 2s',
    ]);
  });
  after(async () => {
    await gateway?.close(100);
    await Promise.all([upstream?.close(), auth?.close(), redis?.close()]);
  });

  it('refuses a subject with a lone surrogate, so no two subjects share a bucket', async () => {
    const statuses: number[] = [];
    for (const [i, sub] of ['mallory\uDC00', 'mallory\uD800', 'mallory\uFFFD'].entries()) {
      const token = await auth.sign({ sub, aud: gateway.mcpUrl, scope: 'mcp:tools' });
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` },
        body: ping(i + 1),
      });
      statuses.push(res.status);
      await res.text();
    }
    // The two ill-formed subjects would both be written to Redis (and into HMACs) as mallory\uFFFD.
    assert.deepEqual(statuses, [401, 401, 200]);
    const reasons = gateway.finished.map((ctx) => ctx.reason);
    assert.deepEqual(reasons.slice(0, 2), ['ERR_AUTH_TOKEN_CLAIMS', 'ERR_AUTH_TOKEN_CLAIMS']);
  });
});

/**
 * Attack held: a Redis that answers garbage. A fake server speaks enough RESP to pass ioredis's ready
 * check, then answers every script call with a reply of the wrong shape. `on_store_error: deny`
 * answers 503 `ERR_RATE_LIMIT_STORE` at once (no hang), and the upstream never sees the request.
 */
describe('held: a Redis that answers the script with garbage', () => {
  let fake: TcpServer;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let gateway: TestGateway;
  const secret = mintKey(randomBytes(32));
  const sockets = new Set<Socket>();
  before(async () => {
    upstream = await startUpstream();
    fake = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      let buffered = '';
      socket.on('data', (data: Buffer) => {
        buffered += data.toString('latin1');
        for (;;) {
          const command = takeCommand();
          if (command === undefined) return;
          const name = (command[0] ?? '').toUpperCase();
          if (name === 'INFO') {
            const info = '# Server\r\nredis_version:7.0.0\r\nloading:0\r\n';
            socket.write(`$${Buffer.byteLength(info)}\r\n${info}\r\n`);
          } else if (name.startsWith('EVAL')) socket.write('*3\r\n:1\r\n$3\r\nnan\r\n$2\r\n{}\r\n');
          else socket.write('+OK\r\n');
        }
      });
      /** One RESP command (an array of bulk strings) off the buffer, or undefined when incomplete. */
      function takeCommand(): string[] | undefined {
        const head = /^\*(\d+)\r\n/.exec(buffered);
        if (head === null) return undefined;
        let at = head[0].length;
        const parts: string[] = [];
        for (let i = 0; i < Number(head[1]); i++) {
          const bulk = /^\$(\d+)\r\n/.exec(buffered.slice(at));
          if (bulk === null) return undefined;
          const length = Number(bulk[1]);
          const start = at + bulk[0].length;
          if (buffered.length < start + length + 2) return undefined;
          parts.push(buffered.slice(start, start + length));
          at = start + length + 2;
        }
        buffered = buffered.slice(at);
        return parts;
      }
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstream.url },
        auth: { session_secret: 'x'.repeat(40) },
        keys: [{ label: 'k', hash: `sha256:${sha256Hex(secret)}`, allow: ['*'] }],
        rate_limit: {
          backend: 'redis',
          redis: { url: `redis://127.0.0.1:${(fake.address() as AddressInfo).port}`, timeout: '500ms' },
        },
      }),
    );
  });
  after(async () => {
    await gateway?.close(100);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => fake?.close(() => r()));
    await upstream?.close();
  });

  it('deny answers 503 at once and forwards nothing', async () => {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${secret}` },
      body: ping(1),
      signal: AbortSignal.timeout(3000),
    });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    await res.text();
    assert.equal(upstream.posts(), 0);
    assert.equal(gateway.finished[0]?.reason, 'ERR_RATE_LIMIT_STORE');
    assert.equal(gateway.finished[0]?.rateLimitFallback, 'store_error');
  });
});

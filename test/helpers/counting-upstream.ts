/**
 * For metering tests: an upstream that counts what reaches it (POSTs and the messages in them, a
 * batch counting each; GETs, kept open as SSE streams; DELETEs; OPTIONS, the readiness probe;
 * anything else), answering every request that has an id with `{}`; keys with their own rate
 * limits; and a POST with the headers a 2025-06-18 client sends.
 */
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';

export async function startCountingUpstream() {
  const counts = { posts: 0, messages: 0, gets: 0, deletes: 0, options: 0, other: 0 };
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    if (req.method === 'OPTIONS') {
      counts.options++;
      return void res.writeHead(204).end();
    }
    if (req.method === 'DELETE') {
      counts.deletes++;
      return void res.writeHead(200).end();
    }
    if (req.method === 'GET') {
      counts.gets++;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': open\n\n');
      open.add(res);
      res.on('close', () => open.delete(res));
      return;
    }
    if (req.method !== 'POST') {
      counts.other++;
      return void res.writeHead(200).end();
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      counts.posts++;
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as unknown;
      const list = (Array.isArray(parsed) ? parsed : [parsed]) as { id?: unknown }[];
      counts.messages += list.length;
      const answers = list
        .filter((m) => m.id !== undefined)
        .map((m) => ({ jsonrpc: '2.0', id: m.id, result: {} }));
      if (answers.length === 0) return void res.writeHead(202).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(Array.isArray(parsed) ? answers : answers[0]));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    counts,
    get openStreams() {
      return open.size;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type CountingUpstream = Awaited<ReturnType<typeof startCountingUpstream>>;

/** A key allowed every tool, with its own `rate_limit`. */
export function makeKey(label: string, rateLimit: Record<string, unknown>) {
  const secret = mintKey(randomBytes(32));
  return {
    label,
    secret,
    config: { label, hash: `sha256:${sha256Hex(secret)}`, allow: ['*'], rate_limit: rateLimit },
  };
}
export type TestKey = ReturnType<typeof makeKey>;

/** The headers a 2025-06-18 client sends with a POST. */
export const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
};

/** A POST of `body` to `url` with `key` (none: unauthenticated); the answer read whole. */
export async function postAs(
  url: string,
  key: TestKey | undefined,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...HEADERS, ...(key ? { authorization: `Bearer ${key.secret}` } : {}), ...headers },
    body,
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

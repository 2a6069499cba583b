/**
 * Final review of 190cc1c..f87e7a7. Each `defect:` test asserts the promised behaviour and fails on
 * the gateway as it is. No timing asserts: what the gateway wrote on a raw socket.
 */
import { rawExchange } from '../helpers/net.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';

function makeKey(label: string) {
  const secret = mintKey(randomBytes(32));
  return { label, secret, config: { label, hash: `sha256:${sha256Hex(secret)}`, allow: ['*'] } };
}

describe('final session review: Expect: 100-continue', () => {
  let upstream: Server;
  let upstreamUrl: string;
  before(async () => {
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  });
  after(async () => {
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  const head = (url: string, secret: string, length: number, expect: string) => {
    const u = new URL(url);
    return (
      `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${secret}\r\n` +
      `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
      `MCP-Protocol-Version: 2025-06-18\r\nContent-Length: ${length}\r\nExpect: ${expect}\r\n\r\n`
    );
  };

  /**
   * handler.ts writes `100 Continue` before readBody checks Content-Length against
   * limits.max_body_bytes: a client announcing a body it may not send is invited to send it and
   * only then told 413 (the very answer `Expect: 100-continue` exists to give before the upload).
   */
  it('defect: a body announced over max_body_bytes gets 413 without being invited first', async () => {
    const k = makeKey('big');
    const g = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstreamUrl },
        auth: { session_secret: 'f'.repeat(40) },
        limits: { max_body_bytes: '1KiB' },
        keys: [k.config],
      }),
    );
    try {
      const answer = await rawExchange(g.mcpUrl, head(g.mcpUrl, k.secret, 1_000_000, '100-continue'));
      const first = answer.split('\r\n')[0];
      assert.equal(first, 'HTTP/1.1 413 Payload Too Large', `first line: ${first}`);
    } finally {
      await g.close(100);
    }
  });

  /**
   * Node emits 'checkContinue' for any Expect value matching /(?:^|\W)100-continue(?:$|\W)/i, but
   * expectsContinue (read-body.ts) only takes the exact value: for `100-continue, x` nothing ever
   * invites the body, and a client that waits for `100 Continue` hangs until the request timeout.
   */
  it('defect: an Expect value Node routes to checkContinue is invited too', async () => {
    const k = makeKey('lister');
    const g = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstreamUrl },
        auth: { session_secret: 'f'.repeat(40) },
        keys: [k.config],
      }),
    );
    try {
      const answer = await rawExchange(g.mcpUrl, head(g.mcpUrl, k.secret, 40, '100-continue, x-foo'));
      const first = answer.split('\r\n')[0];
      assert.equal(first, 'HTTP/1.1 100 Continue', `first line: ${JSON.stringify(first)}`);
    } finally {
      await g.close(100);
    }
  });
});

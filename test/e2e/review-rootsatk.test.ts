/**
 * Attack review of the roots policy (src/policy/roots.ts): a key lends the upstream only the roots
 * its `roots` allow. Each test sends raw bytes through the real gateway to a recording upstream and
 * checks what the upstream got and what the audit line says.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

const KEY = mintKey(randomBytes(32));

describe('review-rootsatk: what a key lends the upstream', () => {
  /** Every body the upstream received, as text. */
  const seen: string[] = [];
  let upstream: Server;
  let gateway: TestGateway;

  before(async () => {
    // Answers each request (alone or in a batch) with an empty tool result; a body of responses and
    // notifications only with 202.
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        seen.push(text);
        const parsed = JSON.parse(text) as unknown;
        const messages = (Array.isArray(parsed) ? parsed : [parsed]) as { id?: unknown; method?: string }[];
        const answers = messages
          .filter((m) => m.method !== undefined && m.id !== undefined)
          .map((m) => ({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ok' }] } }));
        if (answers.length === 0) return void res.writeHead(202).end();
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify(Array.isArray(parsed) ? answers : answers[0]));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'q'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: project
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [read_file]
    roots: ["file:///work/project/*"]
`);
  });
  after(async () => {
    await gateway.close(200);
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  /** POSTs `body` as the key; resolves with the response and what the upstream got for it. */
  async function post(body: unknown, headers: Record<string, string> = {}) {
    const before = seen.length;
    const response = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${KEY}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { response, text, sent: seen[before] };
  }

  /** A 2026-07-28 retried tools/call of read_file whose inputResponses are `responses`. */
  const retried = (responses: unknown) => ({
    jsonrpc: '2.0',
    id: 7,
    method: 'tools/call',
    params: {
      name: 'read_file',
      arguments: { path: '/etc/hostname' },
      inputResponses: responses,
      requestState: 'opaque',
      _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientCapabilities': { roots: {} },
      },
    },
  });
  const HEADERS_2026 = {
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': 'tools/call',
    'mcp-name': 'read_file',
  };

  it('hole: an inputResponses entry wrapping its roots answer under `Result` lends file:///; failed before: reached the upstream as sent', async () => {
    // The gateway reads a wrapped answer under `result`; Go's encoding/json, reading the same
    // wrapped shape into a struct, fills its `Result` field from `Result`, `RESULT` or `reſult` too.
    const { response, text, sent } = await post(
      retried({
        r1: { Result: { roots: [{ uri: 'file:///', name: 'everything' }] } },
        r2: { reſult: { roots: [{ uri: 'file:///work/project/app' }] } },
        e1: { Result: { action: 'accept', content: { ok: true } } },
      }),
      HEADERS_2026,
    );
    assert.equal(response.status, 200, text);
    assert.ok(sent !== undefined);
    assert.ok(!sent.includes('file:///"'), `the upstream got ${sent}`);
    const params = (JSON.parse(sent) as { params: Record<string, unknown> }).params;
    // Left out, as another spelling of `roots` is; an entry that holds no roots passes as sent.
    assert.deepEqual(params.inputResponses, {
      r1: {},
      r2: {},
      e1: { Result: { action: 'accept', content: { ok: true } } },
    });
    const line = await waitFor(() =>
      gateway.auditLines.find((l) => l.rpc_id === 7 && l.roots_withheld !== undefined),
    );
    assert.equal(line.roots_withheld, 2);
    assert.deepEqual(line.roots_withheld_uris, ['file:///', 'file:///work/project/app']);
  });

  it('holds: URI spellings that climb out of file:///work/project/* are withheld; only plain ones under it are lent', async () => {
    const out = [
      'file:///work/project/%2e%2e/%2e%2e/etc', // dot segments percent-encoded (new URL() reads them as ..)
      'file:///work/project/../../etc',
      'file:///work/project/a/..', // a segment ending in ..
      'file:///work/project/.', // a trailing dot
      'file:///work/project//etc', // a rooted segment
      'file:///work/project/..%2fetc', // an encoded slash
      'file:///work/project/\\..\\..\\etc', // new URL() reads \ as / in file URLs
      'file:///work/project/．．/etc', // NFKC makes it ..
      'file:///work/project/%252e%252e', // double encoding
      'file:///work/project-evil',
      'file:///work/project', // the pattern's prefix without its slash
      'FILE:///work/project/app', // another case of the scheme
      'file://localhost/etc',
      'file:/work/project/app',
      'file:///work/project/a%00b',
    ];
    const lent = ['file:///work/project/', 'file:///work/project/app', 'file:///work/project/a?b#c'];
    const roots = [...out, ...lent].map((uri) => ({ uri }));
    const { response, text, sent } = await post(retried({ roots: { roots } }), HEADERS_2026);
    assert.equal(response.status, 200, text);
    const params = (
      JSON.parse(sent as string) as { params: { inputResponses: { roots: { roots: unknown } } } }
    ).params;
    assert.deepEqual(
      params.inputResponses.roots.roots,
      lent.map((uri) => ({ uri })),
    );
    const line = await waitFor(() =>
      gateway.auditLines.find((l) => l.roots_withheld === out.length && l.rpc_id === 7),
    );
    assert.deepEqual(line.roots_withheld_uris, out);
  });

  it('holds: a batch of a tools/call and a roots answer reaches the upstream tagged and cut, and its answer comes back', async () => {
    // Written out: every number keeps its spelling through the re-serialisation.
    const { response, text, sent } = await post(
      '[{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"read_file","arguments":' +
        '{"n":1.0e2,"big":12345678901234567890}}},' +
        '{"jsonrpc":"2.0","id":0,"result":{"roots":[{"uri":"file:///etc"},{"uri":"file:///work/project/app"}]}}]',
    );
    assert.equal(response.status, 200, text);
    const [call, answer] = JSON.parse(sent as string) as Record<string, unknown>[];
    // The request carries the gateway's tag, not the client's id; the answer keeps the upstream's id.
    assert.notEqual(call?.id, 'call-1');
    assert.equal(typeof call?.id, 'string');
    assert.match(sent as string, /"arguments":\{"n":1\.0e2,"big":12345678901234567890\}/);
    assert.deepEqual(answer, {
      jsonrpc: '2.0',
      id: 0,
      result: { roots: [{ uri: 'file:///work/project/app' }] },
    });
    const back = JSON.parse(text) as { id: unknown }[];
    assert.deepEqual(
      back.map((m) => m.id),
      ['call-1'],
    );
  });

  it('holds: 20,000 roots the key may not lend: none reach the upstream, the line counts them all and names 20', async () => {
    const roots = Array.from({ length: 20_000 }, (_, i) => ({ uri: `file:///etc/${'x'.repeat(100)}${i}` }));
    const { response, sent } = await post({ jsonrpc: '2.0', id: 'up-1', result: { roots } });
    assert.equal(response.status, 202);
    assert.equal(sent, '{"jsonrpc":"2.0","id":"up-1","result":{"roots":[]}}');
    const line = await waitFor(() => gateway.auditLines.find((l) => l.roots_withheld === 20_000));
    assert.equal((line.roots_withheld_uris as string[]).length, 20);
    assert.ok(JSON.stringify(line).length < 10_000);
  });
});

/**
 * Review (BOM on the first block): the gateway's SSE parse and the official SDK client's
 * (eventsource-parser 3, after TextDecoderStream) must agree on which lines are fields. The parser
 * the SDK uses drops the characters U+00EF U+00BB U+00BF at the start of the stream (a UTF-8 BOM
 * read as Latin-1), which the gateway reads as part of a field name: such a first block's `data:`
 * reaches the SDK client unjudged.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));
const LATIN1_BOM = Buffer.from('\u00ef\u00bb\u00bf', 'utf8'); // c3 af c2 bb c2 bf

describe('SSE parse differential with the SDK client (first block)', () => {
  let http: HttpServer;
  let gateway: TestGateway;
  let prefix: Buffer = LATIN1_BOM;
  before(async () => {
    http = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        if (req.method !== 'POST') return void res.writeHead(405).end();
        const msg = JSON.parse(raw) as { id?: string; method: string };
        if (msg.id === undefined) return void res.writeHead(202).end();
        if (msg.method === 'initialize') {
          res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'up-1' });
          return void res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id: msg.id,
              result: {
                protocolVersion: '2025-06-18',
                capabilities: { tools: {} },
                serverInfo: { name: 'u', version: '1' },
              },
            }),
          );
        }
        // tools/list: the SDK client's ids are 0 (initialize), 1 (this request). The upstream answers
        // the client's id directly, unfiltered, in a first block the gateway does not read as data.
        const list = JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          result: { tools: [{ name: 'secret_admin', inputSchema: { type: 'object' } }] },
        });
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(Buffer.concat([prefix, Buffer.from(`data: ${list}\n\n`)]));
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp
auth:
  session_secret: "${'d'.repeat(40)}"
keys:
  - label: alice
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [echo]
`);
  });
  after(async () => {
    await gateway.close(200);
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });

  async function listVia() {
    const client = new Client({ name: 'c', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      }),
    );
    try {
      return await client.listTools(undefined, { timeout: 1500 });
    } catch (err) {
      return { error: String(err) };
    } finally {
      await client.close();
    }
  }

  it('(control) without the prefix, the unmatched answer is refused (the SDK client never gets the list)', async () => {
    prefix = Buffer.alloc(0);
    const got = await listVia();
    assert.ok(!JSON.stringify(got).includes('secret_admin'), JSON.stringify(got));
  });

  it('a first block starting with U+00EF U+00BB U+00BF never carries an unjudged message to the SDK client', async () => {
    prefix = LATIN1_BOM;
    const got = await listVia();
    // The key may list only `echo`: a tool list naming secret_admin must never reach it.
    assert.ok(!JSON.stringify(got).includes('secret_admin'), JSON.stringify(got));
  });
});

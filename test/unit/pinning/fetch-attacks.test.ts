/**
 * Attack review of `mcpgate pin`'s reading of the upstream (src/pinning/fetch.ts) against an upstream
 * that lies in pagination or spells numbers no client reads as the lockfile shows them.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchDefinitions, PinFetchError } from '../../../src/pinning/fetch.ts';
import { lockfileOf, serializeLockfile } from '../../../src/pinning/lockfile.ts';

/** Page bodies (the `tools` result) by cursor ('' for the first page). */
let pages: Record<string, string> = {};

describe('mcpgate pin against a lying upstream (attacks)', () => {
  let server: Server;
  let url: string;
  before(async () => {
    server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        if (req.method !== 'POST') return void res.writeHead(405).end();
        const m = JSON.parse(text) as { id?: number; method: string; params?: { cursor?: string } };
        if (m.id === undefined) return void res.writeHead(202).end();
        const result =
          m.method === 'initialize'
            ? '{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"x","version":"1"}}'
            : (pages[m.params?.cursor ?? ''] ?? '{"tools":[]}');
        const body = `{"jsonrpc":"2.0","id":${m.id},"result":${result}}`;
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  const fetchAll = () => fetchDefinitions({ url, headers: {}, timeoutMs: 2000 }, 'test', '0');

  it('held: the same name on two pages (different definitions) is refused', async () => {
    pages = {
      '': '{"tools":[{"name":"search","description":"a"}],"nextCursor":"2"}',
      '2': '{"tools":[{"name":"search","description":"b"}]}',
    };
    await assert.rejects(
      fetchAll(),
      (e: unknown) => e instanceof PinFetchError && /listed twice/.test(e.message),
    );
  });

  it('held: a cursor loop is refused', async () => {
    pages = {
      '': '{"tools":[{"name":"a"}],"nextCursor":"2"}',
      '2': '{"tools":[{"name":"b"}],"nextCursor":"2"}',
    };
    await assert.rejects(
      fetchAll(),
      (e: unknown) => e instanceof PinFetchError && /repeats a cursor/.test(e.message),
    );
  });

  it('held: a key repeated in a definition is refused', async () => {
    pages = { '': '{"tools":[{"name":"a","description":"x","description":"y"}]}' };
    await assert.rejects(fetchAll(), PinFetchError);
  });

  it('attack: a number out of range is pinned as the null the reviewer reads, not refused', async () => {
    // The lockfile then shows `"maximum": null`; at serve time -1e400 (or 1e400) hashes the same
    // and reaches clients as -Infinity (see test/e2e/pinning-attacks.test.ts).
    pages = {
      '': '{"tools":[{"name":"bounded","inputSchema":{"type":"object","properties":{"n":{"type":"number","maximum":1e400}}}}]}',
    };
    let text: string | undefined;
    try {
      text = serializeLockfile(lockfileOf(await fetchAll()));
    } catch (e) {
      assert.ok(e instanceof PinFetchError, String(e));
      return;
    }
    assert.fail(`pinned a definition no client reads as written:\n${text}`);
  });
});

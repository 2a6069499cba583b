/**
 * A catalogue the gateway remembers (the scan memo, and what each key's grants kept of it) through
 * the real gateway: after a reload the same catalogue is judged by the new allowlist, an upstream
 * that answers it with an earlier request's tag is refused and audited, and clients that leave while
 * it is written are each audited without disturbing the next request.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { memoHits } from '../../src/policy/list-scan-memo.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));
const TOOLS = Array.from(
  { length: 200 },
  (_, i) => `{"name":"${Math.floor(i / 20) % 2 ? 'secr' : 'echo'}_${i}","description":"${'d'.repeat(200)}"}`,
);
const yaml = (url: string, allow: string[]) => `listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'s'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: k
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ${JSON.stringify(allow)}
`;

describe('a remembered tools/list catalogue', () => {
  let gateway: TestGateway;
  let url: string;
  let firstTag: string | undefined;
  let replay = false;
  const http = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const m = JSON.parse(raw) as { id?: string };
      if (m.id === undefined) return void res.writeHead(202).end();
      firstTag ??= m.id;
      const id = replay ? firstTag : m.id;
      const body = Buffer.from(
        `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"tools":[${TOOLS.join(',')}]}}`,
      );
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  });
  before(async () => {
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
    gateway = await startTestGateway(yaml(url, ['echo_*']));
  });
  after(async () => {
    await gateway.close(200);
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });
  const list = async (id: string) => {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${KEY}`,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }),
    });
    return { status: res.status, text: await res.text() };
  };
  const names = (t: string) =>
    (JSON.parse(t) as { result: { tools: { name: string }[] } }).result.tools.map((x) => x.name);

  it('after a reload the same catalogue is judged by the new allowlist', async () => {
    const h0 = memoHits();
    for (let k = 0; k < 3; k++) {
      const r = await list(`a${k}`);
      assert.equal(r.status, 200);
      assert.ok(names(r.text).every((n) => n.startsWith('echo_')) && names(r.text).length === 100);
    }
    const { config } = parseConfigText(yaml(url, ['secr_*']), {}, Date.now());
    await gateway.runtime.reload(config!);
    for (let k = 0; k < 3; k++) {
      const r = await list(`b${k}`);
      assert.equal(r.status, 200);
      assert.ok(
        names(r.text).every((n) => n.startsWith('secr_')) && names(r.text).length === 100,
        r.text.slice(0, 300),
      );
      assert.equal((JSON.parse(r.text) as { id: string }).id, `b${k}`);
    }
    assert.ok(memoHits() - h0 >= 4);
  });

  it("an earlier request's tag on a remembered catalogue is refused (502), and audited", async () => {
    replay = true;
    const before = gateway.auditLines.length;
    const r = await list('c0');
    replay = false;
    assert.equal(r.status, 502, r.text.slice(0, 200));
    assert.ok(!r.text.includes('echo_') && !r.text.includes('secr_'));
    for (let t = 0; t < 50 && gateway.auditLines.length === before; t++)
      await new Promise((x) => setTimeout(x, 20));
    assert.equal(gateway.auditLines.length - before, 1);
    const ok = await list('c1');
    assert.equal(ok.status, 200);
  });

  it('clients that abort while a remembered catalogue is written: every request audited, the next served', async () => {
    const before = gateway.auditLines.length;
    const aborts = Array.from({ length: 10 }, async (_, k) => {
      const ac = new AbortController();
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        signal: ac.signal,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${KEY}`,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: `ab${k}`, method: 'tools/list' }),
      }).catch(() => undefined);
      ac.abort();
      await res?.text().catch(() => undefined);
    });
    await Promise.all(aborts);
    for (let t = 0; t < 100 && gateway.auditLines.length - before < 10; t++)
      await new Promise((x) => setTimeout(x, 20));
    assert.equal(gateway.auditLines.length - before, 10);
    const ok = await list('after-abort');
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.text) as { id: string }).id, 'after-abort');
  });
});

/**
 * A catalogue the gateway remembers (the scan memo, and what each key's grants kept of it) through
 * the real gateway: after a reload the same catalogue is judged by the new allowlist, an upstream
 * that answers it with an earlier request's tag is refused and audited, and clients that leave while
 * it is written are each audited without disturbing the next request.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { memoHits } from '../../src/policy/list-scan-memo.ts';
import {
  answerRequests,
  postBody,
  rawUpstreamConfig,
  startRawUpstreamGateway,
} from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));
/** 200 tools in runs of 20: `echo_*` and `secr_*` in turn. */
const TOOLS = Array.from(
  { length: 200 },
  (_, i) => `{"name":"${Math.floor(i / 20) % 2 ? 'secr' : 'echo'}_${i}","description":"${'d'.repeat(200)}"}`,
);

describe('a remembered tools/list catalogue', () => {
  let raw: RawUpstreamGateway;
  let gateway: TestGateway;
  let firstTag: string | undefined;
  /** Answer with the first request's tag instead of this one's. */
  let replay = false;
  before(async () => {
    raw = await startRawUpstreamGateway(
      answerRequests((m, res) => {
        firstTag ??= m.id;
        const id = replay ? firstTag : m.id;
        const body = Buffer.from(
          `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"tools":[${TOOLS.join(',')}]}}`,
        );
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
      }),
      KEY,
      ['echo_*'],
    );
    gateway = raw.gateway;
  });
  after(async () => {
    await raw.close();
  });
  const ask = (id: string, signal?: AbortSignal) =>
    postBody(raw, KEY, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }), signal);
  const list = async (id: string) => {
    const res = await ask(id);
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
    const { config } = parseConfigText(rawUpstreamConfig(raw.upstreamUrl, KEY, ['secr_*']), {}, Date.now());
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
      const res = await ask(`ab${k}`, ac.signal).catch(() => undefined);
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

/**
 * Review of the less-trodden methods (src/policy/, src/pipeline/inspect.ts): completions, templates,
 * subscriptions, client responses and notifications, the 2026-07-28 revision's results.
 * "failed before: ..." tests failed before the fix named in their comment; "holds: ..." tests pass
 * and would fail if the defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey } from '../helpers/review-config.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';

const MODERN = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };

/** The upstream's answer to each list or read a test sends, by method. */
type Answer = (method: string) => Record<string, unknown>;

describe('review: methods', () => {
  const key = newKey();
  /** Another key with the same lists. */
  const other = newKey();
  let upstream: ScriptedUpstream;
  let gw: TestGateway;
  /** How the upstream answers: a JSON body, or one SSE event; `pad` makes the body large. */
  const mode = { sse: false, pad: 0, answer: (() => ({})) as Answer };

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen: Seen, res: ServerResponse) => {
      const m = seen.body as { id?: unknown; method?: string } | undefined;
      if (m === undefined || Array.isArray(m) || m.id === undefined) return void res.writeHead(202).end();
      const result = {
        ...mode.answer(m.method ?? ''),
        ...(mode.pad > 0 ? { pad: 'p'.repeat(mode.pad) } : {}),
      };
      const text = JSON.stringify({ jsonrpc: '2.0', id: m.id, result });
      if (mode.sse) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`event: message\ndata: ${text}\n\n`);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(text);
      }
    });
    gw = await startTestGateway(`
listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
auth:
  session_secret: ${'s'.repeat(40)}
keys:
  - label: k
    hash: "sha256:${sha256Hex(key)}"
    allow: ["echo"]
    prompts: ["greet"]
    resources: ["file:///public/*"]
  - label: other
    hash: "sha256:${sha256Hex(other)}"
    allow: ["echo"]
`);
  });
  after(async () => {
    await gw?.close(100);
    await upstream?.close();
  });

  async function post(body: unknown, as = key): Promise<{ status: number; text: string }> {
    const r = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${as}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify(body),
    });
    return { status: r.status, text: await r.text() };
  }

  /** The one JSON-RPC message of a JSON body or of the last SSE event with data. */
  function message(text: string): { result?: Record<string, unknown>; error?: { code: number } } {
    if (text.startsWith('{')) return JSON.parse(text) as ReturnType<typeof message>;
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trim())
      .filter((d) => d !== '');
    return JSON.parse(data.at(-1) as string) as ReturnType<typeof message>;
  }

  // ---------------------------------------------------------------------------------------------
  // 2026-07-28 caching hints on the results the gateway makes per key
  // ---------------------------------------------------------------------------------------------

  const catalogue: Answer = (method) => {
    const hint = { ttlMs: 3_600_000, cacheScope: 'public', resultType: 'complete' };
    switch (method) {
      case 'tools/list':
        return {
          tools: [
            { name: 'echo', inputSchema: { type: 'object' } },
            { name: 'drop_db', inputSchema: { type: 'object' } },
          ],
          ...hint,
        };
      case 'prompts/list':
        return { prompts: [{ name: 'greet' }, { name: 'admin_prompt' }], ...hint };
      case 'resources/list':
        return {
          resources: [
            { uri: 'file:///public/a', name: 'a' },
            { uri: 'file:///secret/b', name: 'b' },
          ],
          ...hint,
        };
      case 'resources/templates/list':
        return {
          resourceTemplates: [
            { uriTemplate: 'file:///public/{x}', name: 'p' },
            { uriTemplate: 'file:///secret/{x}', name: 's' },
          ],
          ...hint,
        };
      case 'resources/read':
        return { contents: [{ uri: 'file:///public/a', text: 'a' }], ...hint };
      default:
        return {};
    }
  };
  const cacheable: [string, Record<string, unknown>][] = [
    ['tools/list', {}],
    ['prompts/list', {}],
    ['resources/list', {}],
    ['resources/templates/list', {}],
    ['resources/read', { uri: 'file:///public/a' }],
  ];

  /**
   * 2026-07-28 results carry caching hints; `cacheScope: "public"` (the Go SDK's default) tells any
   * client or intermediary (a shared gateway, a caching proxy) it MAY serve the result across
   * authorization contexts. The gateway cuts each list and each read to what one key may see, and
   * passed the upstream's "public" on: a multi-user host honouring it serves key A's tools/list to
   * key B (names and descriptions of tools hidden from B) and A's resources/read of a URI to B, whose
   * own read of it the gateway refuses, without B's request reaching the gateway at all.
   * Fixed in src/policy/filter-list.ts (and the byte paths fast-list.ts, list-scan.ts leave such a
   * result to it): a result filtered for a key says `"private"`.
   */
  it('failed before: a list or read filtered for one key kept the upstream\u2019s cacheScope "public" (any cache may serve it to another key)', async () => {
    mode.answer = catalogue;
    for (const [sse, pad] of [
      [false, 0],
      [false, 8192],
      [true, 0],
      [true, 8192],
    ] as const) {
      mode.sse = sse;
      mode.pad = pad;
      for (const [method, params] of cacheable) {
        const { status, text } = await post({
          jsonrpc: '2.0',
          id: 1,
          method,
          params: { ...params, _meta: MODERN },
        });
        const where = `${method} (${sse ? 'SSE' : 'JSON'}, pad ${pad})`;
        assert.equal(status, 200, where);
        const result = message(text).result;
        assert.ok(result !== undefined, where);
        assert.equal(result.cacheScope, 'private', where);
        assert.equal(result.ttlMs, 3_600_000, where);
        assert.doesNotMatch(JSON.stringify(result), /drop_db|admin_prompt|secret/, where);
      }
    }
    mode.sse = false;
    mode.pad = 0;
  });

  it('failed before: a case variant of cacheScope ("CacheScope", "cache_scope") saying "public" reached the client beside the list', async () => {
    for (const variant of ['CacheScope', 'cache_scope', 'cacheſcope']) {
      for (const pad of [0, 8192]) {
        mode.pad = pad;
        mode.answer = (method) => {
          const base = catalogue(method);
          delete base.cacheScope;
          return { ...base, cacheScope: 'private', [variant]: 'public' };
        };
        const { text } = await post({
          jsonrpc: '2.0',
          id: 2,
          method: 'tools/list',
          params: { _meta: MODERN },
        });
        const result = message(text).result;
        assert.ok(result !== undefined, variant);
        assert.equal(Object.hasOwn(result, variant), false, `${variant}, pad ${pad}`);
        assert.equal(result.cacheScope, 'private');
      }
    }
    mode.pad = 0;
  });

  it('holds: a result without caching hints (2025-era) gets none added; one already "private" passes as sent', async () => {
    mode.answer = (method) => {
      const base = catalogue(method);
      delete base.cacheScope;
      delete base.ttlMs;
      return base;
    };
    for (const [method, params] of cacheable) {
      const { text } = await post({ jsonrpc: '2.0', id: 3, method, params });
      const result = message(text).result;
      assert.ok(result !== undefined, method);
      assert.equal(Object.hasOwn(result, 'cacheScope'), false, method);
    }
    // Large and already private (the byte paths may answer it): filtered, and still private.
    mode.pad = 8192;
    mode.answer = (method) => ({ ...catalogue(method), cacheScope: 'private' });
    const { text } = await post({ jsonrpc: '2.0', id: 4, method: 'tools/list', params: { _meta: MODERN } });
    const result = message(text).result;
    assert.equal(result?.cacheScope, 'private');
    assert.deepEqual(
      (result?.tools as { name: string }[]).map((t) => t.name),
      ['echo'],
    );
    mode.pad = 0;
  });

  // ---------------------------------------------------------------------------------------------
  // Client notifications
  // ---------------------------------------------------------------------------------------------

  /**
   * A `notifications/cancelled` names the request it cancels by the gateway's tag for it, looked up
   * for the same key and session (integrity/cancels.ts); one that names no pending request of the key
   * gets a fresh tag no request has. Sent with an id, it was a request to the gateway: only the id
   * was replaced, and `params.requestId` reached the upstream as the client wrote it. An upstream that
   * acts on a cancellation whatever its id (a hand-written dispatch on the method) then cancels the
   * request that id names: here another key's, whose tag leaked. Fixed in src/policy/judge.ts: a
   * notification with an id is invalid, and nothing of it reaches the upstream.
   */
  it('failed before: a notifications/cancelled sent with an id passed its requestId (another key\u2019s tag) to the upstream untranslated', async () => {
    mode.answer = () => ({ content: [] });
    await post(
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } },
      other,
    );
    const theirs = (upstream.seen.at(-1)?.body as { id: string }).id;
    assert.match(theirs, /^g1/);
    // As a notification: the tag is not one of this key's pending requests, so a fresh one goes.
    const before = upstream.seen.length;
    const plain = await post({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: theirs },
    });
    assert.equal(plain.status, 202);
    const sent = upstream.seen.at(-1)?.body as { params: { requestId: string } };
    assert.equal(upstream.seen.length, before + 1);
    assert.notEqual(sent.params.requestId, theirs);
    // With an id: refused, nothing forwarded, one line saying so.
    const lines = gw.auditLines.length;
    const withId = await post({
      jsonrpc: '2.0',
      id: 9,
      method: 'notifications/cancelled',
      params: { requestId: theirs },
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(upstream.seen.length, before + 1, 'nothing more reached the upstream');
    assert.equal(withId.status, 200);
    const answer = JSON.parse(withId.text) as { id: unknown; error?: { code: number } };
    assert.equal(answer.id, 9);
    assert.equal(answer.error?.code, -32602);
    assert.equal(gw.auditLines.length, lines + 1);
    const line = gw.auditLines.at(-1) as Record<string, unknown>;
    assert.equal(line.rpc_method, 'notifications/cancelled');
    assert.equal(line.reason, 'ERR_INVALID_PARAMS');
    // In a batch beside an allowed request: the batch is refused whole.
    const batch = await post([
      { jsonrpc: '2.0', id: 10, method: 'ping' },
      { jsonrpc: '2.0', id: 11, method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
    ]);
    assert.equal(upstream.seen.length, before + 1, 'nothing of the batch reached the upstream');
    assert.equal((JSON.parse(batch.text) as unknown[]).length, 2);
  });

  // ---------------------------------------------------------------------------------------------
  // The audit line of a message the judge cannot read
  // ---------------------------------------------------------------------------------------------

  /**
   * The parse records a malformed message as `decision: invalid` (so does a cursor the gateway did not
   * seal, -32602), but a message the judge found malformed (a `"Name"` beside no `name`, a `ref` that
   * is not an object, a notification with an id) was recorded `decision: deny`, as if the key's lists
   * had refused it: the line said something false, and `mcpgate_requests_total{decision}` with it.
   * Fixed in src/pipeline/inspect.ts: such a request is `invalid`; a denial among them keeps `deny`.
   */
  it('failed before: a message the judge could not read was recorded as a denial by the key\u2019s lists', async () => {
    const bodies: [unknown, string][] = [
      [{ jsonrpc: '2.0', id: 20, method: 'tools/call', params: { Name: 'echo' } }, 'invalid'],
      [{ jsonrpc: '2.0', id: 21, method: 'completion/complete', params: { ref: ['ref/prompt'] } }, 'invalid'],
      [{ jsonrpc: '2.0', id: 22, method: 'prompts/get', params: { name: 7 } }, 'invalid'],
      [
        [
          { jsonrpc: '2.0', id: 23, method: 'ping' },
          { jsonrpc: '2.0', id: 24, method: 'tools/call', params: {} },
        ],
        'invalid',
      ],
      // Control: a denial, alone or beside an invalid message, is a denial.
      [{ jsonrpc: '2.0', id: 25, method: 'tools/call', params: { name: 'drop_db' } }, 'deny'],
      [
        [
          { jsonrpc: '2.0', id: 26, method: 'tools/call', params: {} },
          { jsonrpc: '2.0', id: 27, method: 'tools/call', params: { name: 'drop_db' } },
        ],
        'deny',
      ],
    ];
    const before = upstream.seen.length;
    for (const [body, decision] of bodies) {
      const lines = gw.auditLines.length;
      const { text } = await post(body);
      await new Promise((r) => setTimeout(r, 30));
      assert.match(text, /"error"/);
      assert.equal(gw.auditLines.length, lines + 1);
      assert.equal((gw.auditLines.at(-1) as { decision: string }).decision, decision, JSON.stringify(body));
    }
    assert.equal(upstream.seen.length, before, 'nothing reached the upstream');
  });
});

/**
 * Review 12: the response side. Can a client see, or learn, something its key may not use?
 * A scripted upstream (the test writes each answer) behind the real gateway, two keys:
 * `alice` (tool echo, prompt greet, resources under file:///public/) and `bob` (everything).
 *
 * `hole: ...` tests assert the secure behaviour and failed on the code as reviewed;
 * `held: ...` tests are attacks that held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';

const ALICE = mintKey(randomBytes(32));
const BOB = mintKey(randomBytes(32));

function config(url: string): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'r'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: alice
    hash: "sha256:${sha256Hex(ALICE)}"
    allow: [echo]
    prompts: [greet]
    resources: ["file:///public/*"]
  - label: bob
    hash: "sha256:${sha256Hex(BOB)}"
    allow: ["*"]
    prompts: ["*"]
    resources: ["*"]
`;
}

type Rpc = { id?: string; method?: string; params?: Record<string, unknown> };
const rpcOf = (seen: Seen) => seen.body as Rpc;

/**
 * Cursors as the official TypeScript SDK (v2, @modelcontextprotocol/server, its `paginate`) writes
 * them: base64url of "after:" + the key of the page's last item.
 */
const encodeCursor = (key: string) => Buffer.from(`after:${key}`).toString('base64url');
const decodeCursor = (cursor: string) => Buffer.from(cursor, 'base64url').toString('utf8');

describe('review 12: what the client sees on the response side', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startScriptedUpstream();
    gateway = await startTestGateway(config(upstream.url));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  async function post(key: string, body: unknown) {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key}`,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  }

  const answerJson = (res: ServerResponse, text: string) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(text);
  };

  /**
   * An upstream paginating its tools as the SDK's `paginate` does (page size 2, sorted by name):
   * the next cursor names the last tool of the page. When that tool is one the key may not use,
   * the gateway drops the entry but passes the cursor, and the client decodes the hidden name.
   */
  it('hole: a nextCursor naming the hidden last entry of a page reaches the client (SDK-style cursor)', async () => {
    const tools = ['echo', 'secret_admin', 'zeta_wipe'].map((name) => ({
      name,
      inputSchema: { type: 'object' },
    }));
    upstream.set((seen, res) => {
      const m = rpcOf(seen);
      const cursor = m.params?.cursor;
      let start = 0;
      if (typeof cursor === 'string') {
        const after = decodeCursor(cursor).slice('after:'.length);
        start = tools.findIndex((t) => t.name > after);
        if (start === -1) start = tools.length;
      }
      const page = tools.slice(start, start + 2);
      const last = page.at(-1);
      const more = start + 2 < tools.length && last !== undefined;
      answerJson(
        res,
        JSON.stringify({
          jsonrpc: '2.0',
          id: m.id,
          result: { tools: page, ...(more ? { nextCursor: encodeCursor(last.name) } : {}) },
        }),
      );
    });
    const listed = await post(ALICE, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(listed.status, 200, listed.text);
    const result = (JSON.parse(listed.text) as { result: { tools: { name: string }[]; nextCursor?: string } })
      .result;
    assert.deepEqual(
      result.tools.map((t) => t.name),
      ['echo'],
      'the entry itself is hidden',
    );
    // failed before: the cursor passes as the upstream wrote it; base64url-decoded it reads
    // "after:secret_admin", the name of the tool the list just hid.
    const cursor = result.nextCursor ?? '';
    assert.doesNotMatch(
      decodeCursor(cursor),
      /secret_admin/,
      `nextCursor ${cursor} decodes to ${JSON.stringify(decodeCursor(cursor))}`,
    );
  });

  /**
   * README: "a key cannot tell a hidden tool from a missing one". A cursor is the client's own
   * text and is forwarded unjudged, so a key can ask the upstream "the page after <name>": an
   * upstream that resumes after an exact name (and refuses a cursor naming no item, as the SDK's
   * paginate refuses a cursor it cannot read) answers a page for a hidden tool and an error for a
   * missing one.
   */
  it('hole: a cursor crafted by the client tells a hidden tool from a missing one', async () => {
    const tools = ['echo', 'secret_admin', 'zeta_wipe'].map((name) => ({
      name,
      inputSchema: { type: 'object' },
    }));
    upstream.set((seen, res) => {
      const m = rpcOf(seen);
      const cursor = m.params?.cursor;
      let start = 0;
      if (typeof cursor === 'string') {
        const after = decodeCursor(cursor).slice('after:'.length);
        const at = tools.findIndex((t) => t.name === after);
        if (at === -1) {
          answerJson(
            res,
            JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: 'Invalid cursor' } }),
          );
          return;
        }
        start = at + 1;
      }
      answerJson(
        res,
        JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { tools: tools.slice(start, start + 2) } }),
      );
    });
    const probe = async (name: string) => {
      const got = await post(ALICE, {
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/list',
        params: { cursor: encodeCursor(name) },
      });
      return { status: got.status, body: JSON.parse(got.text) as { result?: unknown; error?: unknown } };
    };
    const hidden = await probe('secret_admin');
    const missing = await probe('no_such_tool');
    // failed before: the hidden tool's probe gets a (filtered, empty) page, the missing one's gets
    // -32602 "Invalid cursor": the key learns that secret_admin exists.
    assert.deepEqual(hidden, missing, 'a hidden tool and a missing one must get the same answer');
  });

  /**
   * resources/read is judged by `params.uri` only. An upstream that answers a read with more
   * contents than the one URI asked for (a directory read, a resolved link, an aggregate resource)
   * hands the key a resource outside its `resources`, URI and text.
   */
  it('hole: resources/read of an allowed URI passes contents[] naming a URI the key may not read', async () => {
    upstream.set((seen, res) => {
      const m = rpcOf(seen);
      answerJson(
        res,
        JSON.stringify({
          jsonrpc: '2.0',
          id: m.id,
          result: {
            contents: [
              { uri: 'file:///public/notes/', mimeType: 'text/plain', text: 'index' },
              { uri: 'file:///private/keys/id_rsa', mimeType: 'text/plain', text: 'PRIVATE KEY MATERIAL' },
            ],
          },
        }),
      );
    });
    // The same read is refused when asked directly:
    const direct = await post(ALICE, {
      jsonrpc: '2.0',
      id: 1,
      method: 'resources/read',
      params: { uri: 'file:///private/keys/id_rsa' },
    });
    assert.match(direct.text, /not found/);
    const read = await post(ALICE, {
      jsonrpc: '2.0',
      id: 2,
      method: 'resources/read',
      params: { uri: 'file:///public/notes/' },
    });
    assert.equal(read.status, 200, read.text);
    // failed before: both contents reach the client, the denied URI and its text included.
    assert.doesNotMatch(read.text, /file:\/\/\/private|PRIVATE KEY MATERIAL/, read.text);
  });

  it('held: list entries with a repeated name (either order), a non-string name, and an escaped "tool\\u0073" list key show only allowed entries', async () => {
    const bodies = [
      // entry with name repeated: JSON.parse (and the SDK clients) read the last
      (id: string) =>
        `{"jsonrpc":"2.0","id":"${id}","result":{"tools":[{"name":"secret_admin","name":"echo","description":"d"},{"name":"echo","name":"secret_admin"}]}}`,
      // a non-string name and a name in an array
      (id: string) =>
        `{"jsonrpc":"2.0","id":"${id}","result":{"tools":[{"name":["secret_admin"]},{"name":{"secret_admin":1}},{"name":"echo"}]}}`,
      // the list key written with an escape, after a plain one (last wins)
      (id: string) =>
        `{"jsonrpc":"2.0","id":"${id}","result":{"tools":[{"name":"echo"}],"tool\\u0073":[{"name":"secret_admin"},{"name":"echo"}]}}`,
      // the list key written with an escape, before a plain one
      (id: string) =>
        `{"jsonrpc":"2.0","id":"${id}","result":{"tool\\u0073":[{"name":"secret_admin"}],"tools":[{"name":"echo"}]}}`,
    ];
    for (const [i, body] of bodies.entries()) {
      upstream.set((seen, res) => answerJson(res, body(rpcOf(seen).id as string)));
      const got = await post(ALICE, { jsonrpc: '2.0', id: 10 + i, method: 'tools/list' });
      if (got.status !== 200) continue; // refused whole: nothing seen
      assert.doesNotMatch(got.text, /secret_admin/, `body ${i}: ${got.text}`);
      const tools = (JSON.parse(got.text) as { result: { tools: { name: unknown }[] } }).result.tools;
      for (const t of tools) assert.equal(t.name, 'echo', `body ${i}`);
    }
  });

  it('held: a completion naming a denied prompt (type spelled with an escape) or a template outside the key never reaches the upstream', async () => {
    upstream.set((seen, res) =>
      answerJson(
        res,
        JSON.stringify({ jsonrpc: '2.0', id: rpcOf(seen).id, result: { completion: { values: ['leak'] } } }),
      ),
    );
    const refs = [
      '{"type":"ref/pr\\u006fmpt","name":"admin_prompt"}',
      '{"type":"ref/prompt","n\\u0061me":"admin_prompt"}',
      '{"type":"ref/resource","uri":"file:///private/{name}"}',
      '{"type":"ref/resource","uri":"file:///public/{+path}/../../private/{x}"}',
      '{"type":"ref/resource","uri":"file:///public/x","name":"admin_prompt","type":"ref/prompt"}',
    ];
    for (const ref of refs) {
      const before = upstream.seen.length;
      const got = await post(
        ALICE,
        `{"jsonrpc":"2.0","id":"c","method":"completion/complete","params":{"ref":${ref},"argument":{"name":"a","value":""}}}`,
      );
      assert.doesNotMatch(got.text, /leak/, `${ref}: ${got.text}`);
      assert.equal(upstream.seen.length, before, `${ref} reached the upstream`);
    }
  });

  it("held: tasks/list entries of another key's task are dropped even when the upstream repeats the owned id's fields", async () => {
    let n = 0;
    upstream.set((seen, res) => {
      const m = rpcOf(seen);
      const reply = (result: unknown) =>
        answerJson(res, JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
      if (m.method === 'tools/call') return reply({ task: { taskId: `t-${++n}`, status: 'working' } });
      // A duplicated taskId: JSON.parse reads the last, a first-wins client the first.
      return void answerJson(
        res,
        `{"jsonrpc":"2.0","id":"${m.id}","result":{"tasks":[{"taskId":"t-1","taskId":"t-2","status":"working"},{"taskId":"t-2","taskId":"t-1","status":"working"},{"taskId":"t-1"}]}}`,
      );
    });
    const task = { ttl: 60_000 };
    await post(BOB, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', task } });
    await post(ALICE, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', task } });
    const listed = await post(ALICE, { jsonrpc: '2.0', id: 2, method: 'tasks/list' });
    assert.equal(listed.status, 200, listed.text);
    // What reaches the client is what was judged: re-serialised, t-1 (bob's) nowhere.
    assert.doesNotMatch(listed.text, /"t-1"/, listed.text);
  });

  /**
   * Only the array a list request names is filtered (filterListResult reads `result[kind]`). An
   * upstream that answers each list method with its whole catalogue object (tools, prompts and
   * resources in one result: a lazy hand-written server) passes the other arrays as written, in a
   * single answer and in a batch answer alike.
   */
  it('hole: a tools/list answer also carrying `prompts` and `resources` passes those arrays unfiltered', async () => {
    const catalogue = {
      tools: [{ name: 'echo' }, { name: 'secret_admin' }],
      prompts: [{ name: 'greet' }, { name: 'admin_prompt' }],
      resources: [
        { uri: 'file:///public/a', name: 'a' },
        { uri: 'file:///private/keys', name: 'keys' },
      ],
    };
    upstream.set((seen, res) => {
      const body = seen.body as Rpc | Rpc[];
      const answer = (m: Rpc) => ({ jsonrpc: '2.0', id: m.id, result: catalogue });
      answerJson(res, JSON.stringify(Array.isArray(body) ? body.map(answer).reverse() : answer(body)));
    });
    const single = await post(ALICE, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const batch = await post(ALICE, [
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'prompts/list' },
    ]);
    for (const got of [single, batch]) {
      assert.equal(got.status, 200, got.text);
      // the arrays each request asked for are filtered ...
      assert.doesNotMatch(
        JSON.stringify(JSON.parse(got.text)),
        /"tools":\[\{"name":"echo"\},\{"name":"secret_admin"/,
      );
      // failed before: ... the others reach the client as the upstream wrote them: admin_prompt,
      // file:///private/keys (and, in the batch, secret_admin in the prompts/list answer).
      assert.doesNotMatch(got.text, /admin_prompt|file:\/\/\/private|secret_admin/, got.text);
    }
  });
});

describe('review 12 fix: list cursors sealed for the key and the list', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  const tools = ['echo', 'secret_admin', 'zeta_wipe'].map((name) => ({
    name,
    inputSchema: { type: 'object' },
  }));
  /** The cursors the upstream was sent, in order. */
  const received: unknown[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const m = rpcOf(seen);
      const cursor = m.params?.cursor;
      received.push(cursor);
      const start = typeof cursor === 'string' ? Number(cursor.slice('page-'.length)) : 0;
      const page = tools.slice(start, start + 2);
      const more = start + 2 < tools.length;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: m.id,
          result: {
            [m.method === 'prompts/list' ? 'prompts' : 'tools']: page,
            ...(more ? { nextCursor: `page-${start + 2}` } : {}),
          },
        }),
      );
    });
    gateway = await startTestGateway(config(upstream.url));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  async function list(key: string, method: string, cursor?: string) {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 3,
        method,
        ...(cursor === undefined ? {} : { params: { cursor } }),
      }),
    });
    const body = JSON.parse(await res.text()) as {
      result?: { tools?: { name: string }[]; nextCursor?: string };
      error?: { code: number };
    };
    return { status: res.status, body };
  }

  it('pages through: the client holds only sealed cursors, the upstream reads only its own', async () => {
    received.length = 0;
    const names: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await list(BOB, 'tools/list', cursor);
      assert.equal(page.status, 200);
      names.push(...(page.body.result?.tools ?? []).map((t) => t.name));
      cursor = page.body.result?.nextCursor;
      if (cursor !== undefined) assert.doesNotMatch(cursor, /page-/, 'the upstream cursor is not shown');
      pages++;
    } while (cursor !== undefined && pages < 5);
    assert.deepEqual(names, ['echo', 'secret_admin', 'zeta_wipe']);
    assert.deepEqual(received, [undefined, 'page-2']);
    // Alice pages through the same catalogue and sees only her tool, on every page.
    const first = await list(ALICE, 'tools/list');
    assert.deepEqual(
      first.body.result?.tools?.map((t) => t.name),
      ['echo'],
    );
    const second = await list(ALICE, 'tools/list', first.body.result?.nextCursor);
    assert.deepEqual(second.body.result?.tools, []);
  });

  it("refuses, before the upstream, a cursor the client wrote, another key's, or another list's", async () => {
    const bobs = (await list(BOB, 'tools/list')).body.result?.nextCursor;
    const alices = (await list(ALICE, 'tools/list')).body.result?.nextCursor;
    assert.ok(bobs && alices);
    received.length = 0;
    for (const [key, method, cursor] of [
      [ALICE, 'tools/list', 'page-2'],
      [ALICE, 'tools/list', bobs],
      [ALICE, 'prompts/list', alices],
      [ALICE, 'tools/list', `${alices}x`],
      [ALICE, 'tools/list', alices.slice(0, -2)],
    ] as const) {
      const got = await list(key, method, cursor);
      assert.equal(got.body.error?.code, -32602, `${method} ${cursor}`);
    }
    assert.deepEqual(received, [], 'none reached the upstream');
    // The key's own cursor for that list still works.
    assert.equal((await list(ALICE, 'tools/list', alices)).status, 200);
    assert.deepEqual(received, ['page-2']);
  });
});

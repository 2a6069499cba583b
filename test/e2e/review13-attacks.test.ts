/**
 * Review 13: attacks on sealed list cursors, one list per result, resources/read contents,
 * stream admission and max_in_flight (commit "What a key sees and holds").
 *
 * `hole: ...` tests assert the secure behaviour and fail on the code as reviewed;
 * `held: ...` tests are attacks that held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { ServerResponse } from 'node:http';
import { waitFor } from '../helpers/net.ts';
import { ACCEPT, openRequest } from '../helpers/open-request.ts';
import type { OpenStream } from '../helpers/open-request.ts';
import { openStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';

const ALICE = mintKey(randomBytes(32));
const BOB = mintKey(randomBytes(32));

function config(url: string, extra = ''): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'q'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
${extra}keys:
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

const TOOLS = ['echo', 'secret_admin', 'zeta_wipe'].map((name) => ({
  name,
  inputSchema: { type: 'object' },
}));
/** SDK-style cursors: base64url of "after:<last name>". */
const encodeCursor = (key: string) => Buffer.from(`after:${key}`).toString('base64url');
const decodeCursor = (cursor: string) => Buffer.from(cursor, 'base64url').toString('utf8');

describe('review 13: list cursors and list results', () => {
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

  async function post(key: string, body: unknown, accept = 'application/json, text/event-stream') {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${key}` },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  }
  const answerJson = (res: ServerResponse, text: string) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(text);
  };
  /** An upstream paging TOOLS two at a time, resuming after the name its (SDK-style) cursor holds. */
  const pagingUpstream = () =>
    upstream.set((seen, res) => {
      const m = rpcOf(seen);
      // A Go (encoding/json) upstream: any key equal to "cursor" under case folding is the cursor.
      const p = m.params ?? {};
      const key = Object.keys(p).find((k) => k.toUpperCase().toLowerCase() === 'cursor');
      const cursor = key === undefined ? undefined : p[key];
      let start = 0;
      if (typeof cursor === 'string') {
        const decoded = decodeCursor(cursor);
        if (!decoded.startsWith('after:')) {
          answerJson(
            res,
            JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: 'bad cursor' } }),
          );
          return;
        }
        const afterName = decoded.slice('after:'.length);
        const at = TOOLS.findIndex((t) => t.name === afterName);
        if (at === -1) {
          answerJson(
            res,
            JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: 'no such item' } }),
          );
          return;
        }
        start = at + 1;
      }
      const page = TOOLS.slice(start, start + 2);
      const more = start + 2 < TOOLS.length;
      answerJson(
        res,
        JSON.stringify({
          jsonrpc: '2.0',
          id: m.id,
          result: { tools: page, ...(more ? { nextCursor: encodeCursor(page.at(-1)!.name) } : {}) },
        }),
      );
    });

  /**
   * The fix of review 12 refuses a `cursor` the client wrote. But `params` members are guarded
   * against case variants only for the members the judge reads (read-depth.ts PARAMS_READ), and
   * `cursor` is not one: `{"Cursor": ...}` passes unjudged, and an upstream decoding with Go's
   * encoding/json (which the gateway itself names as a threat, case-variants.ts) reads it as the
   * cursor. The client again asks "the page after <name>" and tells a hidden tool from a missing one.
   */
  it('hole: a client-written cursor spelled "Cursor" (or "curſor") reaches the upstream unopened', async () => {
    pagingUpstream();
    for (const spelling of ['Cursor', 'CURSOR', 'cur\u017for']) {
      upstream.seen.length = 0;
      const hidden = await post(ALICE, {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/list',
        params: { [spelling]: encodeCursor('secret_admin') },
      });
      const missing = await post(ALICE, {
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/list',
        params: { [spelling]: encodeCursor('no_such_tool') },
      });
      // failed before: both are forwarded as written; the upstream answers a page after the hidden
      // tool and an error for the missing one, so the key learns that secret_admin exists.
      assert.equal(
        upstream.seen.length,
        0,
        `${spelling}: forwarded ${upstream.seen.map((s) => s.raw).join(' | ')}; answers ${hidden.text} / ${missing.text}`,
      );
      assert.equal(hidden.text.includes('no such item'), missing.text.includes('no such item'));
    }
  });

  /**
   * The seal is AES-GCM without padding: its length is the upstream cursor's length plus a
   * constant. The SDK's cursor is base64url("after:" + the page's last name), so when that entry is
   * hidden from the key, the seal's length tells the key how long the hidden name is (to within
   * base64's 3-byte steps): two catalogues that differ only in the hidden tool's name give the key
   * cursors of different lengths. A key guessing among candidate names can rule most out.
   */
  it("hole: the sealed cursor's length tells the key how long the hidden last entry's name is", async () => {
    const lengths: number[] = [];
    for (const hidden of ['s', 'secret_admin_rotate_all_credentials']) {
      const catalogue = ['echo', hidden, 'zz_last'].map((name) => ({
        name,
        inputSchema: { type: 'object' },
      }));
      upstream.set((seen, res) => {
        const m = rpcOf(seen);
        const page = catalogue.slice(0, 2);
        answerJson(
          res,
          JSON.stringify({
            jsonrpc: '2.0',
            id: m.id,
            result: { tools: page, nextCursor: encodeCursor(page[1]!.name) },
          }),
        );
      });
      const got = await post(ALICE, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
      const result = (JSON.parse(got.text) as { result: { tools: { name: string }[]; nextCursor: string } })
        .result;
      assert.deepEqual(
        result.tools.map((t) => t.name),
        ['echo'],
        'the hidden tool is not listed',
      );
      lengths.push(result.nextCursor.length);
    }
    // failed before: 54 characters after a hidden "s", 114 after a hidden 35-character name; the same
    // page (["echo"]) should carry cursors alike in length.
    assert.equal(lengths[0], lengths[1], `sealed cursor lengths ${lengths.join(' vs ')}`);
  });

  /**
   * seal() accepts an upstream cursor of up to MAX_CURSOR_CHARS UTF-16 units, but open() refuses a
   * presented seal longer than twice that; a non-ASCII cursor takes up to 3 UTF-8 bytes per unit,
   * and base64 4 characters per 3 bytes, so a 2,100-character cursor of "€" seals to ~8,440
   * characters: the gateway hands the key a cursor it then refuses, and the key cannot page on.
   */
  it('hole: a cursor the gateway sealed for the key (a long non-ASCII upstream cursor) is refused with -32602 when the key presents it', async () => {
    const upstreamCursor = '\u20ac'.repeat(2100);
    upstream.seen.length = 0;
    upstream.set((seen, res) => {
      const m = rpcOf(seen);
      const second = m.params?.cursor === upstreamCursor;
      answerJson(
        res,
        JSON.stringify({
          jsonrpc: '2.0',
          id: m.id,
          result: second ? { tools: [TOOLS[2]] } : { tools: [TOOLS[0]], nextCursor: upstreamCursor },
        }),
      );
    });
    const first = await post(ALICE, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const cursor = (JSON.parse(first.text) as { result: { nextCursor?: string } }).result.nextCursor;
    assert.ok(cursor?.startsWith('c1.'), 'the page carries a sealed cursor');
    const next = await post(ALICE, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: { cursor } });
    // failed before: {"error":{"code":-32602,...}}: the seal (8,443 characters) is over open()'s bound.
    assert.equal(next.status, 200, next.text.slice(0, 200));
    assert.doesNotMatch(next.text, /-32602/, next.text.slice(0, 200));
    assert.equal(upstream.seen.length, 2, 'the second page was asked of the upstream');
  });

  /**
   * openRequestCursors opens the cursor of list *requests* (an id and a plan); a `tools/list`
   * written as a notification (no id) has no plan, so its `params.cursor` is forwarded as the client
   * wrote it. The upstream reads a client-written cursor in a list method after all: an upstream
   * that does not tell a notification from a request by the id alone (or answers it anyway) pages
   * after the name the client chose. (Low impact with the SDK servers, which ignore it.)
   */
  it('hole: a tools/list sent as a notification (no id) carries a client-written cursor to the upstream', async () => {
    pagingUpstream();
    upstream.seen.length = 0;
    await post(
      ALICE,
      `{"jsonrpc":"2.0","method":"tools/list","params":{"cursor":"${encodeCursor('secret_admin')}"}}`,
    );
    // failed before: the upstream receives {"jsonrpc":"2.0","method":"tools/list","params":{"cursor":"YWZ0ZXI6c2VjcmV0X2FkbWlu"}}
    assert.deepEqual(
      upstream.seen.map((s) => s.raw).filter((raw) => raw.includes(encodeCursor('secret_admin'))),
      [],
    );
  });

  /**
   * Every way an upstream's cursor could get past the seal: an SSE answer, a batch, a key spelled
   * with an escape, a repeated key, a value that is not a string, a body past the one-pass paths'
   * threshold (list-match.ts, fast-list.ts), another kind's list beside it, and a GET stream the
   * upstream answers a list request on.
   */
  it('held: no upstream cursor or other list reaches the client (SSE, batch, escaped or repeated key, non-string, large body)', async () => {
    const pad = 'p'.repeat(6000);
    const tools = (big: boolean) =>
      `[{"name":"echo","description":"${big ? pad : 'e'}","inputSchema":{"type":"object"}},{"name":"secret_admin","inputSchema":{"type":"object"}}]`;
    const results: Record<string, (big: boolean) => string> = {
      plain: (big) => `{"tools":${tools(big)},"nextCursor":"LEAK-secret_admin"}`,
      first: (big) => `{"nextCursor":"LEAK-secret_admin","tools":${tools(big)}}`,
      escaped: (big) => `{"tools":${tools(big)},"next\\u0043ursor":"LEAK-secret_admin"}`,
      repeated: (big) => `{"tools":${tools(big)},"nextCursor":"LEAK-1","nextCursor":"LEAK-2"}`,
      repeatedFirst: (big) => `{"nextCursor":"LEAK-1","tools":${tools(big)},"nextCursor":"LEAK-2"}`,
      object: (big) => `{"tools":${tools(big)},"nextCursor":{"after":"LEAK-secret_admin"}}`,
      array: (big) => `{"tools":${tools(big)},"nextCursor":["LEAK-secret_admin"]}`,
      otherLists: (big) =>
        `{"tools":${tools(big)},"prompts":[{"name":"LEAK-prompt"}],"resources":[{"uri":"file:///LEAK","name":"x"}],"resourceTemplates":[{"uriTemplate":"file:///LEAK/{x}","name":"t"}],"tasks":[{"taskId":"LEAK-task"}]}`,
      otherEscaped: (big) => `{"tools":${tools(big)},"pr\\u006fmpts":[{"name":"LEAK-prompt"}]}`,
    };
    let variant = 'plain';
    let big = false;
    let sse = false;
    upstream.set((seen, res) => {
      const body = seen.body as Rpc | Rpc[];
      const one = (m: Rpc) =>
        `{"jsonrpc":"2.0","id":${JSON.stringify(m.id)},"result":${results[variant]!(big)}}`;
      const text = Array.isArray(body) ? `[${body.map(one).join(',')}]` : one(body);
      if (sse) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`event: message\ndata: ${text}\n\n`);
      } else answerJson(res, text);
    });
    let sealed = 0;
    for (const v of Object.keys(results)) {
      for (const b of [false, true]) {
        for (const s of [false, true]) {
          variant = v;
          big = b;
          sse = s;
          for (const batch of [false, true]) {
            const req = { jsonrpc: '2.0', id: 1, method: 'tools/list' };
            const got = await post(ALICE, batch ? [req, { ...req, id: 2 }] : req);
            const where = `${v} big=${b} sse=${s} batch=${batch}: ${got.status} ${got.text.slice(0, 300)}`;
            assert.ok(got.status === 200 || got.status === 502, where);
            assert.doesNotMatch(got.text, /LEAK|secret_admin/, where);
            if (/"nextCursor":"c1\./.test(got.text)) sealed++;
          }
        }
      }
    }
    assert.ok(sealed >= 8, 'cursors were sealed and passed');
  });

  it('held: resources/read contents of URIs the key may not read never reach it (SSE, batch, escaped keys, repeated uri, dot segments, percent-encoding, large body)', async () => {
    const pad = 'p'.repeat(6000);
    const contents = (big: boolean) =>
      `[{"uri":"file:///public/dir/a","text":"${big ? pad : 'ok'}"},` +
      `{"uri":"file:///private/k","text":"LEAK"},` +
      `{"ur\\u0069":"file:///private/k2","text":"LEAK"},` +
      `{"uri":"file:///public/dir/../../private/k3","text":"LEAK"},` +
      `{"uri":"file:///public/%2E%2e/private/k4","text":"LEAK"},` +
      `{"uri":"file:///public/..%2fprivate/k5","text":"LEAK"},` +
      `{"uri":"file:///private/k6","uri":"file:///public/dir/b","text":"dup"},` +
      `{"uri":"file:///public/dir/c","uri":"file:///private/k7","text":"LEAK"},` +
      `{"uri":["file:///public/dir/d"],"text":"LEAK"},"LEAK",null]`;
    let big = false;
    let sse = false;
    let key = 'contents';
    upstream.set((seen, res) => {
      const body = seen.body as Rpc | Rpc[];
      const one = (m: Rpc) =>
        `{"jsonrpc":"2.0","id":${JSON.stringify(m.id)},"result":{"${key}":${contents(big)}}}`;
      const text = Array.isArray(body) ? `[${body.map(one).join(',')}]` : one(body);
      if (sse) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`data: ${text}\n\n`);
      } else answerJson(res, text);
    });
    for (const k of ['contents', 'c\\u006fntents']) {
      for (const b of [false, true]) {
        for (const s of [false, true]) {
          for (const batch of [false, true]) {
            key = k;
            big = b;
            sse = s;
            const req = {
              jsonrpc: '2.0',
              id: 1,
              method: 'resources/read',
              params: { uri: 'file:///public/dir/' },
            };
            const got = await post(ALICE, batch ? [req, { ...req, id: 2 }] : req);
            const where = `${k} big=${b} sse=${s} batch=${batch}: ${got.status} ${got.text.slice(0, 300)}`;
            assert.equal(got.status, 200, where);
            assert.doesNotMatch(got.text, /LEAK|private/, where);
            assert.match(got.text, /file:\/\/\/public\/dir\/a/, where);
          }
        }
      }
    }
  });
});

// -----------------------------------------------------------------------------------------------
// max_in_flight
// -----------------------------------------------------------------------------------------------

async function postRaw(url: string, key: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, accept: ACCEPT, 'content-type': 'application/json' },
    body,
  });
  return { status: res.status, text: await res.text() };
}

describe('review 13: max_in_flight', () => {
  let upstream: ScriptedUpstream;
  /** Tool calls waiting on the client's reply to their question, by the question's id. */
  const asking = new Map<string, { res: ServerResponse; id: unknown }>();
  /** Calls the upstream holds without answering (`hold`), and ones it drops (`drop`). */
  const holding: ServerResponse[] = [];
  let questions = 0;
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      res.on('error', () => {});
      if (seen.method === 'DELETE') return void res.writeHead(200).end();
      const body = seen.body as
        | {
            method?: string;
            id?: unknown;
            result?: unknown;
            params?: { arguments?: Record<string, boolean> };
          }
        | undefined;
      const args = body?.params?.arguments ?? {};
      if (body?.method === 'tools/call' && args.ask) {
        // The tool asks the client a question on its answer stream and waits for the reply.
        const q = `q${++questions}`;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          `data: {"jsonrpc":"2.0","id":"${q}","method":"elicitation/create","params":{"message":"sure?","requestedSchema":{"type":"object","properties":{}}}}\n\n`,
        );
        asking.set(q, { res, id: body.id });
        return;
      }
      if (body?.method === 'tools/call' && args.hold) return void holding.push(res);
      if (body?.method === 'tools/call' && args.drop) return void res.socket?.destroy();
      if (body !== undefined && body.method === undefined && typeof body.id === 'string') {
        // The client's reply to a question: accepted, and the call it was waiting on answers.
        const waiting = asking.get(body.id);
        res.writeHead(202).end();
        if (waiting !== undefined) {
          asking.delete(body.id);
          waiting.res.end(
            `data: {"jsonrpc":"2.0","id":${JSON.stringify(waiting.id)},"result":{"content":[{"type":"text","text":"done"}]}}\n\n`,
          );
        }
        return;
      }
      if (body?.id === undefined) return void res.writeHead(202).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result: {} }));
    });
  });
  after(async () => {
    for (const { res } of asking.values()) res.destroy();
    for (const res of holding) res.destroy();
    await upstream.close();
  });

  /**
   * A tool that asks the client a question (elicitation/create, or sampling/createMessage) holds
   * its request at the upstream until the client replies; the reply is a POST of a JSON-RPC
   * response, which the gateway counts against the same key's max_in_flight. With max_in_flight
   * calls waiting on questions (1 is a valid setting: one call), no reply can get through: each call
   * waits forever for a reply the gateway refuses, and even the client's notifications/cancelled
   * for them is refused. A POST holding only responses and notifications is answered at once (202)
   * and is what ends the calls holding the slots.
   */
  it("hole: with max_in_flight calls waiting on the client's reply to elicitation/create, the reply (and the cancellation) gets 429: the calls never end", async () => {
    const gateway = await startTestGateway(
      config(upstream.url, '').replace(
        '    resources: ["file:///public/*"]\n',
        '    resources: ["file:///public/*"]\n    rate_limit: { capacity: 1000, refill_per_second: 1000, max_in_flight: 1 }\n',
      ),
    );
    const held: OpenStream[] = [];
    try {
      const call = await openRequest(
        gateway.mcpUrl,
        'POST',
        { authorization: `Bearer ${ALICE}`, accept: ACCEPT, 'content-type': 'application/json' },
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"ask":true}}}',
      );
      held.push(call);
      assert.equal(call.status, 200);
      const question = await waitFor(
        () => /"id":"(q\d+)","method":"elicitation\/create"/.exec(call.text())?.[1],
        3000,
        'the question',
      );
      const reply = await postRaw(
        gateway.mcpUrl,
        ALICE,
        `{"jsonrpc":"2.0","id":"${question}","result":{"action":"accept","content":{}}}`,
      );
      const cancel = await postRaw(
        gateway.mcpUrl,
        ALICE,
        '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}',
      );
      // failed before: 429 ERR_TOO_MANY_IN_FLIGHT for both; the upstream never gets the reply and the
      // call (holding the key's only slot) waits forever.
      assert.equal(reply.status, 202, `the reply: ${reply.status} ${reply.text}`);
      assert.equal(cancel.status, 202, `the cancellation: ${cancel.status} ${cancel.text}`);
      await waitFor(() => call.text().includes('"done"') || undefined, 3000, 'the call ends');
    } finally {
      for (const s of held) s.close();
      await gateway.close(200);
    }
  });

  it('held: slots come back after a client abort, an upstream that drops the connection, and a DELETE; a refusal is one rate_limited line; another key is served', async () => {
    const gateway = await startTestGateway(
      config(upstream.url, '').replace(
        '    resources: ["file:///public/*"]\n',
        '    resources: ["file:///public/*"]\n    rate_limit: { capacity: 1000, refill_per_second: 1000, max_in_flight: 2 }\n',
      ),
    );
    const held: OpenStream[] = [];
    const hold = (id: number) =>
      new Promise<{ close(): void }>((resolve) => {
        const req = httpRequest(gateway.mcpUrl, {
          method: 'POST',
          agent: false,
          headers: { authorization: `Bearer ${ALICE}`, accept: ACCEPT, 'content-type': 'application/json' },
        });
        req.on('error', () => {});
        req.end(
          `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"hold":true}}}`,
        );
        resolve({ close: () => req.destroy() });
      });
    try {
      for (let round = 0; round < 3; round++) {
        const before = holding.length;
        const a = await hold(100 + round * 10);
        const b = await hold(101 + round * 10);
        await waitFor(() => holding.length >= before + 2 || undefined, 3000, 'two calls held');
        const third = await postRaw(
          gateway.mcpUrl,
          ALICE,
          `{"jsonrpc":"2.0","id":${102 + round * 10},"method":"ping"}`,
        );
        assert.equal(third.status, 429, third.text);
        assert.equal(
          (await postRaw(gateway.mcpUrl, BOB, '{"jsonrpc":"2.0","id":1,"method":"ping"}')).status,
          200,
        );
        // Give them back: one by aborting, one by the upstream ending the answer.
        a.close();
        holding.at(-1)?.socket?.destroy();
        b.close();
        await waitFor(
          async () =>
            (await postRaw(gateway.mcpUrl, ALICE, '{"jsonrpc":"2.0","id":5,"method":"ping"}')).status ===
              200 || undefined,
          3000,
          'slots back',
        );
      }
      // An upstream that drops the connection, and a DELETE, each give theirs back too.
      for (let i = 0; i < 4; i++) {
        const dropped = await postRaw(
          gateway.mcpUrl,
          ALICE,
          `{"jsonrpc":"2.0","id":${200 + i},"method":"tools/call","params":{"name":"echo","arguments":{"drop":true}}}`,
        );
        assert.ok(dropped.status >= 500, `${dropped.status}`);
        const del = await fetch(gateway.mcpUrl, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${ALICE}` },
        });
        await del.text();
      }
      const count = holding.length;
      const a = await hold(300);
      const b = await hold(301);
      await waitFor(() => holding.length >= count + 2 || undefined, 3000, 'held');
      const lines = gateway.auditLines.length;
      const refused = await postRaw(gateway.mcpUrl, ALICE, '{"jsonrpc":"2.0","id":302,"method":"ping"}');
      const both = await Promise.all([
        postRaw(gateway.mcpUrl, ALICE, '{"jsonrpc":"2.0","id":303,"method":"ping"}'),
      ]);
      a.close();
      b.close();
      assert.equal(refused.status, 429);
      assert.equal(both[0]?.status, 429);
      assert.match(refused.text, /"id":302/);
      const line = await waitFor(
        () => gateway.auditLines.slice(lines).filter((l) => l.reason === 'ERR_TOO_MANY_IN_FLIGHT'),
        3000,
        'lines',
      );
      await waitFor(
        () => (gateway.auditLines.slice(lines).length >= 4 ? true : undefined),
        3000,
        'all lines',
      );
      assert.equal(line.length, 2);
      assert.ok(line.every((l) => l.decision === 'rate_limited' && l.key === 'alice'));
    } finally {
      for (const s of held) s.close();
      await gateway.close(200);
    }
  });
});

// -----------------------------------------------------------------------------------------------
// The older HTTP+SSE transport
// -----------------------------------------------------------------------------------------------

describe('review 13: the HTTP+SSE transport', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=R13');
    gateway = await startTestGateway(
      config(upstream.url).replace(`  url: ${upstream.url}\n`, `  url: ${upstream.url}\n  transport: sse\n`),
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  const postTo = (url: string, body: unknown) =>
    fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it("held: on the stream a list's cursor is sealed and read contents are judged; the POST opens only the key's own seal", async () => {
    const stream = await openStream(gateway.mcpUrl, ALICE);
    try {
      const endpoint = new URL((await stream.next()).data, gateway.url).href;
      let arrived = upstream.nextPost();
      assert.equal((await postTo(endpoint, { jsonrpc: '2.0', id: 4, method: 'tools/list' })).status, 202);
      let sent = (await arrived) as { id: string };
      upstream.write(
        `data: {"jsonrpc":"2.0","id":${JSON.stringify(sent.id)},"result":{"tools":[{"name":"echo","inputSchema":{}},{"name":"secret_admin","inputSchema":{}}],"next\\u0043ursor":"LEAK-secret_admin","prompts":[{"name":"LEAK"}]}}\n\n`,
      );
      const listed = (await stream.next()).data;
      assert.doesNotMatch(listed, /LEAK|secret_admin/, listed);
      const cursor = (JSON.parse(listed) as { result: { nextCursor: string } }).result.nextCursor;
      assert.match(cursor, /^c1\./);
      // Its own seal opens (the upstream gets its own cursor); a raw one never reaches the upstream.
      arrived = upstream.nextPost();
      assert.equal(
        (await postTo(endpoint, { jsonrpc: '2.0', id: 5, method: 'tools/list', params: { cursor } })).status,
        202,
      );
      sent = (await arrived) as { id: string; params: { cursor: string } };
      assert.equal((sent as unknown as { params: { cursor: string } }).params.cursor, 'LEAK-secret_admin');
      upstream.write(`data: {"jsonrpc":"2.0","id":${JSON.stringify(sent.id)},"result":{"tools":[]}}\n\n`);
      await stream.next();
      const posts = upstream.posts.length;
      const raw = await postTo(endpoint, {
        jsonrpc: '2.0',
        id: 6,
        method: 'tools/list',
        params: { cursor: 'LEAK-secret_admin' },
      });
      const rawText = await raw.text();
      const refusal = raw.status === 202 ? (await stream.next()).data : rawText;
      assert.match(refusal, /-32602/);
      assert.equal(upstream.posts.length, posts);
      // resources/read contents on the stream.
      arrived = upstream.nextPost();
      await postTo(endpoint, {
        jsonrpc: '2.0',
        id: 7,
        method: 'resources/read',
        params: { uri: 'file:///public/dir/' },
      });
      sent = (await arrived) as { id: string };
      upstream.write(
        `data: {"jsonrpc":"2.0","id":${JSON.stringify(sent.id)},"result":{"c\\u006fntents":[{"uri":"file:///public/dir/a","text":"ok"},{"uri":"file:///private/k","text":"LEAK"},{"uri":"file:///public/dir/../../private/k","text":"LEAK"},{"uri":"file:///public/%2e%2e/private/k","text":"LEAK"},{"ur\\u0069":"file:///private/k","text":"LEAK"}]}}\n\n`,
      );
      const read = (await stream.next()).data;
      assert.doesNotMatch(read, /LEAK|private/, read);
      assert.match(read, /file:\/\/\/public\/dir\/a/);
    } finally {
      stream.close();
    }
  });
});

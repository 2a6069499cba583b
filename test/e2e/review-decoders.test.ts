/**
 * Attack review (decoders): what other languages' JSON decoders read from the bytes the gateway
 * forwards, and what clients in other languages read from the bytes it passes back. The upstream
 * is written in Python (test/helpers/python-upstream.py): it reads every forwarded body with
 * `json.loads` and reports what it read, and answers with what a test tells it to.
 *
 * A test named "hole: ..." failed on the code it was written against ("failed before: ..." in its
 * comment says how); "holds: ..." guards a defence that held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { pythonSkip, startPythonUpstream } from '../helpers/python-upstream.ts';
import type { PythonUpstream } from '../helpers/python-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

const KEY = newKey();

/** ES2024 `String.prototype.isWellFormed` (the project's lib is es2023). */
type WellFormed = string & { isWellFormed(): boolean };

/**
 * The data of the events a client of the TypeScript SDK dispatches (eventsource-parser: the type
 * as written after one space; only none or `message`), in order.
 */
function sdkEvents(stream: string): string[] {
  const out: string[] = [];
  for (const block of stream.split(/\n\n/)) {
    let type: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const value = line.slice(colon + 1).replace(/^ /, '');
      if (line.slice(0, colon) === 'event') type = value;
      else if (line.slice(0, colon) === 'data') data.push(value);
    }
    if (data.length > 0 && (type === undefined || type === 'message')) out.push(data.join('\n'));
  }
  return out;
}

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(done(), 'timed out');
}

describe('decoders: a Python upstream behind the gateway', { skip: pythonSkip }, () => {
  let py: PythonUpstream;
  let gw: TestGateway;

  before(async () => {
    py = await startPythonUpstream();
    gw = await startTestGateway(
      reviewConfig(py.url, [{ label: 'reader', key: KEY, allow: ['echo', 'pub_*'] }], '', {
        secret: 's'.repeat(40),
        resources: ['file:///public/*'],
      }),
    );
  });
  after(async () => {
    await gw?.close(200);
    await py?.close();
  });

  const post = async (body: string) => {
    const res = await fetch(gw.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${KEY}`,
      },
      body,
    });
    return { status: res.status, text: await res.text() };
  };
  const request = (id: number, method: string, params: string) =>
    `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${params}}`;

  it('hole: a listed or read URI hiding a dot segment behind a tab or newline ("file:///public/.\\t./secret") passed: URL parsers strip them and read the hidden file:///secret', async () => {
    // failed before: each answer passed whole. The WHATWG URL parser (Node's URL, the TS SDK's
    // clients, rust-url under pydantic's AnyUrl, the Python SDK's Resource.uri) removes every tab
    // and newline before it parses, so `.\t.` is the segment `..`, resolved away: the client is
    // shown file:///secret, which the key may neither list nor read. A request spelling the same
    // URI is refused (isName: no control characters); the lists and contents now drop it as well.
    assert.equal(new URL('file:///public/.\t./secret').href, 'file:///secret');
    const cases: [string, string, string, string][] = [
      ['resources/list', '{}', 'resources', '{"uri":"file:///public/.\\t./secret","name":"s"}'],
      [
        'resources/templates/list',
        '{}',
        'resourceTemplates',
        '{"uriTemplate":"file:///public/.\\n./{x}","name":"t"}',
      ],
      [
        'resources/read',
        '{"uri":"file:///public/dir"}',
        'contents',
        '{"uri":"file:///public/.\\r./secret","text":"s"}',
      ],
    ];
    let id = 0;
    for (const [method, params, member, hidden] of cases) {
      const shown =
        member === 'resourceTemplates'
          ? '{"uriTemplate":"file:///public/{x}","name":"p"}'
          : member === 'contents'
            ? '{"uri":"file:///public/dir/a","text":"p"}'
            : '{"uri":"file:///public/a","name":"p"}';
      await py.answer(`{"jsonrpc":"2.0","id":@ID@,"result":{"${member}":[${shown},${hidden}]}}`);
      const { status, text } = await post(request(++id, method, params));
      assert.equal(status, 200, text);
      const result = (
        JSON.parse(text) as { result: Record<string, { uri?: string; uriTemplate?: string }[]> }
      ).result;
      const uris = result[member]!.map((e) => e.uri ?? e.uriTemplate);
      assert.deepEqual(uris, [JSON.parse(shown).uri ?? JSON.parse(shown).uriTemplate], `${method}: ${text}`);
    }
    await py.answer(undefined);
  });
  it('hole: a list or read result that is an array ("result":[{"tools":[...]}]) passed unfiltered: a client unwrapping one-element arrays (Jackson) read the hidden entries', async () => {
    // failed before: a result that is not an object was passed as it was, hidden entries and all.
    const cases: [string, string, string, string][] = [
      ['tools/list', '{}', 'tools', '{"name":"admin_delete","inputSchema":{"type":"object"}}'],
      ['prompts/list', '{}', 'prompts', '{"name":"hidden_prompt"}'],
      ['resources/list', '{}', 'resources', '{"uri":"file:///private/key","name":"k"}'],
      [
        'resources/read',
        '{"uri":"file:///public/a"}',
        'contents',
        '{"uri":"file:///private/key","text":"k"}',
      ],
    ];
    let id = 100;
    for (const [method, params, member, hidden] of cases) {
      await py.answer(`{"jsonrpc":"2.0","id":@ID@,"result":[{"${member}":[${hidden}]}]}`);
      const { status, text } = await post(request(++id, method, params));
      assert.equal(status, 200, text);
      assert.doesNotMatch(text, /admin_delete|hidden_prompt|private/, `${method}: ${text}`);
      assert.deepEqual((JSON.parse(text) as { result: unknown }).result, { [member]: [] }, method);
    }
    await py.answer(undefined);
  });

  it('hole: a lone surrogate reached the audit line (a client id, a method, or a cut through an emoji): strict JSON readers (serde_json, pydantic) refuse the whole line', async () => {
    // failed before: rpc_id, rpc_method and tool held lone surrogates, written as `\ud800` escapes.
    // JSON.parse, Python's json and Go's encoding/json read such a line; Rust's serde_json (under
    // Vector, a common log shipper) and pydantic's jiter refuse it whole, so every line of a client
    // that sends such an id was lost to them. The gateway made one itself: a well-formed tool name
    // of 255 letters and an emoji was cut to 256 UTF-16 units, between the emoji's two halves.
    const cases = [
      `{"jsonrpc":"2.0","id":"\\ud800","method":"tools/call","params":{"name":"echo","arguments":{}}}`,
      `{"jsonrpc":"2.0","id":1,"method":"x\\udc00","params":{}}`,
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${'a'.repeat(255)}\\ud83d\\ude00"}}`,
      `{"jsonrpc":"2.0","id":"${'b'.repeat(255)}\\ud83d\\ude00","method":"tools/call","params":{"name":"echo"}}`,
    ];
    for (const body of cases) {
      const lines = gw.auditLines.length;
      const { status, text } = await post(body);
      assert.equal(status, 200, text);
      await waitFor(() => gw.auditLines.length > lines);
      const line = gw.auditLines[lines]!;
      for (const [field, value] of Object.entries(line)) {
        if (typeof value === 'string')
          assert.ok(
            (value as WellFormed).isWellFormed(),
            `${field} holds a lone surrogate: ${JSON.stringify(line)}`,
          );
      }
    }
    // What was kept reads as it was sent, up to the replacement (U+FFFD, as Go reads it).
    assert.equal(gw.auditLines.at(-4)!.rpc_id, '\ufffd');
    assert.equal(gw.auditLines.at(-2)!.tool, `${'a'.repeat(255)}…`);
  });
  it('hole: an answer in an event of another type ("event: other") passed as the answer: the TS and Python SDK clients ignore such an event and waited for ever, mcp-go read it', async () => {
    // failed before: the client got `event: other` with the (filtered) answer, and the line said
    // allow. The TypeScript SDK's client dispatches only events without a type or of type `message`
    // (so does the Python SDK's, httpx-sse giving `message` for none), and so ignores it; mcp-go
    // reads every event's data whatever its type. The gateway took the request as answered, so no
    // error came either. Now such an event is dropped, as the HTTP+SSE transport drops one, and the
    // request is owed its error.
    const answer = `{"jsonrpc":"2.0","id":@ID@,"result":{"tools":[{"name":"echo","inputSchema":{}}]}}`;
    for (const type of ['other', 'message ', 'Message']) {
      await py.answer(`SSE:event: ${type}\ndata: ${answer}\n\n`);
      const lines = gw.auditLines.length;
      const { status, text } = await post(request(7, 'tools/list', '{}'));
      assert.equal(status, 200, text);
      const read = sdkEvents(text);
      assert.equal(read.length, 1, `${JSON.stringify(type)}: ${text}`);
      const message = JSON.parse(read[0]!) as { id: unknown; error?: { message: string } };
      assert.equal(message.id, 7);
      assert.equal(message.error?.message, 'upstream ended the stream without an answer', text);
      // No event of another type with data is left for an mcp-go client to read as the answer.
      assert.doesNotMatch(text, /^event: (?!message$)/m, text);
      await waitFor(() => gw.auditLines.length > lines);
      assert.equal(gw.auditLines[lines]!.decision, 'upstream_error');
    }
    await py.answer(undefined);
  });
  it('holds: duplicate, escaped and case-twin keys at every depth reach Python as the gateway judged them, or not at all', async () => {
    // Each body is a tools/call of the allowed echo spelled to make a decoder read another name (the
    // key may not call rm_rf). Forwarded, Python's json.loads must read the name the audit line
    // says was judged, and no rm_rf anywhere in params; refused, Python must get nothing.
    const bodies = [
      `{"name":"rm_rf","name":"echo"}`,
      `{"name":"echo","n\\u0061me":"rm_rf"}`,
      `{"n\\u0061me":"echo","name":"rm_rf"}`,
      `{"name":"echo","Name":"rm_rf"}`,
      `{"name":"echo","nam\\u0065":"rm_rf","arguments":{"a":1,"a":2}}`,
      `{"name":"echo","_meta":{"x":{"name":"rm_rf","name":"e"}},"arguments":{"\\u006e":"x"}}`,
      `{"name":"ech\\u006f","arguments":{"k":"\\ud800","K":1}}`,
      `{"name":"echo","arguments":{"deep":${'['.repeat(60)}${']'.repeat(60)},"n":1e400,"m":-0}}`,
    ];
    let id = 100;
    for (const params of bodies) {
      const before = py.reports.length;
      const lines = gw.auditLines.length;
      const { text } = await post(request(++id, 'tools/call', params));
      await waitFor(() => gw.auditLines.length > lines);
      const line = gw.auditLines[lines]!;
      await new Promise((r) => setTimeout(r, 20));
      const reads = py.reports.slice(before);
      if (line.decision !== 'allow') {
        assert.equal(reads.length, 0, `${params}: refused (${text}) but forwarded`);
        continue;
      }
      assert.equal(reads.length, 1, `${params}: ${text}`);
      const read = reads[0]!.read![0]!;
      assert.equal(read.name, `'${String(line.tool)}'`, `${params}: judged ${String(line.tool)}`);
      assert.equal(line.tool, 'echo');
      assert.doesNotMatch(`${read.keys?.join()} ${read.arguments} ${read.meta}`, /rm_rf/, params);
    }
  });
});

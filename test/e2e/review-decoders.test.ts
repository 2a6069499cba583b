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
});

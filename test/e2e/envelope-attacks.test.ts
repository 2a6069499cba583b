/**
 * Attack review of the request envelope and body (atk-envelope). Each test sends bytes through a
 * real gateway to a raw upstream that records what it received, and reads those bytes as some
 * common parser would.
 *
 * Go's encoding/json (v1, before the go-sdk switched away from it: modelcontextprotocol/go-sdk
 * #805, GHSA-wvj2-96wp-fq3f, CVE-2026-27896; mark3labs/mcp-go and hand-written Go servers still use
 * it) matches an object key to a struct field case-insensitively: `"Method"` fills the field tagged
 * `json:"method"`. The gateway refuses an object holding two keys that differ only by case, but a
 * message holding ONE such key and no exact one is judged without it. go-sdk's jsonrpc2
 * DecodeMessage (before the fix) reads any message whose `method` field is non-empty as a request,
 * before it looks at `result` or `error`: a client "response" (allowed by the method table)
 * spelled with `"Method"` and `"Params"` is a tools/call to it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));

/**
 * Go's encoding/json fold of a key (fold.go appendFoldedName): ASCII letters upper-cased; a
 * non-ASCII rune folded to the smallest rune of its unicode.SimpleFold orbit. Only the two orbits
 * that hold ASCII letters besides their own case pair are spelled out (ſ with S, the Kelvin sign
 * with K); U+0130 and U+0131 are orbits of their own in Go's tables (caseOrbit), so they stay.
 */
export function goFold(key: string): string {
  let out = '';
  for (const ch of key) {
    const c = ch.codePointAt(0) as number;
    if (c >= 0x61 && c <= 0x7a) out += String.fromCharCode(c - 0x20);
    else if (c === 0x17f) out += 'S';
    else if (c === 0x212a) out += 'K';
    else out += ch;
  }
  return out;
}

/**
 * The field `field` of a Go struct decoded from `object` by encoding/json v1: every key whose fold
 * equals the field's sets it (an exact match is preferred per key, but each key in turn sets the
 * field), the last winning.
 */
function goField(object: Record<string, unknown>, field: string): unknown {
  let value: unknown;
  for (const key of Object.keys(object)) if (goFold(key) === goFold(field)) value = object[key];
  return value;
}

/**
 * A JSON-RPC message as go-sdk's jsonrpc2.DecodeMessage read it before its fix (encoding/json into
 * wireCombined): a request when its method field is not empty, whatever else it holds.
 */
function goDecodeMessage(raw: string): { method?: string; params?: Record<string, unknown> } {
  const m = JSON.parse(raw) as Record<string, unknown>;
  const method = goField(m, 'method');
  if (typeof method === 'string' && method !== '') {
    return { method, params: goField(m, 'params') as Record<string, unknown> | undefined };
  }
  return {};
}

describe('request body attacks, through the gateway', () => {
  let gateway: TestGateway;
  let http: ReturnType<typeof createServer>;
  const received: string[] = [];
  const contentTypes: (string | undefined)[] = [];

  before(async () => {
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        received.push(raw);
        contentTypes.push(req.headers['content-type']);
        const id = /"id":("[^"]*")/.exec(raw)?.[1] ?? 'null';
        if (id === 'null') return void res.writeHead(202).end();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"jsonrpc":"2.0","id":${id},"result":{"contents":[]}}`);
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'s'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: reader
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ["echo"]
    resources: ["file:///public/*"]
`);
  });
  after(async () => {
    await gateway.close(200);
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  const post = (body: string) =>
    fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${KEY}`,
      },
      body,
    });

  it('the harness: a denied resource is refused, an allowed one forwarded', async () => {
    const before = received.length;
    const denied = await post(
      '{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///etc/shadow"}}',
    );
    const deniedText = await denied.text();
    assert.match(deniedText, /"error"/, deniedText);
    assert.equal(received.length, before);
    const allowed = await post(
      '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///public/a.txt"}}',
    );
    assert.equal(allowed.status, 200, await allowed.text());
    assert.equal(received.length, before + 1);
  });

  it('refused: a client "response" spelled with "Method" and "Params" is a tools/call of a denied tool to a Go upstream', async () => {
    const before = received.length;
    const body =
      '{"jsonrpc":"2.0","id":7,"result":{},"Method":"tools/call","Params":{"name":"rm_rf","arguments":{}}}';
    const res = await post(body);
    const text = await res.text();
    for (const raw of received.slice(before)) {
      const read = goDecodeMessage(raw);
      const tool =
        read.method === 'tools/call' && read.params !== undefined ? goField(read.params, 'name') : undefined;
      assert.notEqual(
        tool,
        'rm_rf',
        `a Go upstream reads a tools/call of rm_rf from the forwarded bytes ${raw} (answer ${res.status} ${text})`,
      );
    }
    assert.equal(received.length, before, `forwarded: ${received.at(-1)}`);
  });

  it('refused: the same with "error" instead of "result", and "METHOD" / "paramſ"', async () => {
    const before = received.length;
    const body =
      '{"jsonrpc":"2.0","id":8,"error":{"code":-1,"message":"x"},"METHOD":"resources/read","param\u017f":{"uri":"file:///etc/shadow"}}';
    const res = await post(body);
    const text = await res.text();
    for (const raw of received.slice(before)) {
      const read = goDecodeMessage(raw);
      const uri =
        read.method === 'resources/read' && read.params !== undefined
          ? goField(read.params, 'uri')
          : undefined;
      assert.notEqual(
        uri,
        'file:///etc/shadow',
        `a Go upstream reads resources/read of file:///etc/shadow from ${raw} (answer ${res.status} ${text})`,
      );
    }
    assert.equal(received.length, before, `forwarded: ${received.at(-1)}`);
  });

  it('refused: subscriptions/listen with "ResourceSubscriptions" (no exact key) is allowed unchecked; Go reads the denied URI', async () => {
    const before = received.length;
    const body =
      '{"jsonrpc":"2.0","id":10,"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{"ResourceSubscriptions":["file:///etc/shadow"]}}}';
    const res = await post(body);
    const text = await res.text();
    for (const raw of received.slice(before)) {
      const read = goDecodeMessage(raw);
      const filter = goField(read.params ?? {}, 'notifications') as Record<string, unknown> | undefined;
      const uris = filter === undefined ? undefined : goField(filter, 'resourceSubscriptions');
      assert.ok(
        !(Array.isArray(uris) && uris.includes('file:///etc/shadow')),
        `a Go upstream reads a subscription to file:///etc/shadow from ${raw} (answer ${res.status} ${text})`,
      );
    }
  });

  it('held: two keys that differ only by case in one object are refused ("method" and "Method")', async () => {
    const before = received.length;
    const res = await post(
      '{"jsonrpc":"2.0","id":9,"method":"tools/call","Method":"tools/call","params":{"name":"echo","arguments":{}}}',
    );
    assert.equal(res.status, 400, await res.text());
    assert.equal(received.length, before);
  });

  /** One request written by hand on a socket; the raw answer. */
  const rawRequest = (head: string, body: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const url = new URL(gateway.mcpUrl);
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(head.replace(/\n/g, '\r\n') + '\r\n' + body);
      });
      let answer = '';
      socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
      setTimeout(() => {
        socket.destroy();
        resolve(answer);
      }, 1500);
    });

  const ALLOWED =
    '{"jsonrpc":"2.0","id":11,"method":"resources/read","params":{"uri":"file:///public/a.txt"}}';

  it('held: Content-Type and Content-Encoding variants are refused (415) or forwarded as application/json', async () => {
    const cases: [Record<string, string>, number][] = [
      [{ 'content-type': 'text/json' }, 415],
      [{ 'content-type': 'application/json-seq' }, 415],
      [{ 'content-type': 'application/json; charset=utf-16' }, 415],
      [{ 'content-type': 'application/json; charset="utf-16le"' }, 415],
      [{ 'content-type': 'application/json; charset=utf-8; charset=utf-7' }, 415],
      [{ 'content-type': 'application/json; charset' }, 415],
      [{ 'content-type': 'application/json', 'content-encoding': 'gzip' }, 415],
      [{ 'content-type': 'application/json', 'content-encoding': 'identity, br' }, 415],
      [{ 'content-type': 'application/JSON ; charset="UTF-8"' }, 200],
      [{ 'content-type': 'application/json;charset=utf-8;boundary=x' }, 200],
    ];
    for (const [headers, status] of cases) {
      const before = received.length;
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${KEY}`,
          ...headers,
        },
        body: ALLOWED,
      });
      await res.text();
      assert.equal(res.status, status, JSON.stringify(headers));
      assert.equal(received.length, before + (status === 200 ? 1 : 0), JSON.stringify(headers));
      if (status === 200) assert.equal(contentTypes.at(-1), 'application/json');
    }
  });

  it('held: Transfer-Encoding with Content-Length, a chunk extension, and two Content-Types', async () => {
    const auth = `Authorization: Bearer ${KEY}\nAccept: application/json, text/event-stream\n`;
    const host = `Host: ${new URL(gateway.mcpUrl).host}\n`;
    const before = received.length;
    const smuggled = await rawRequest(
      `POST /mcp HTTP/1.1\n${host}${auth}Content-Type: application/json\nContent-Length: 4\nTransfer-Encoding: chunked\n`,
      `${ALLOWED.length.toString(16)}\r\n${ALLOWED}\r\n0\r\n\r\n`,
    );
    assert.match(smuggled, /^HTTP\/1\.1 400/);
    assert.equal(received.length, before);
    const chunked = await rawRequest(
      `POST /mcp HTTP/1.1\n${host}${auth}Content-Type: application/json\nTransfer-Encoding: chunked\nConnection: close\n`,
      `${ALLOWED.length.toString(16)};ext="a"\r\n${ALLOWED}\r\n0\r\n\r\n`,
    );
    assert.match(chunked, /^HTTP\/1\.1 200/);
    assert.equal(received.at(-1), ALLOWED.replace('"id":11', received.at(-1)!.match(/"id":("[^"]*")/)![0]));
    const two = await rawRequest(
      `POST /mcp HTTP/1.1\n${host}${auth}Content-Type: application/json\nContent-Type: application/json; charset=utf-16\nContent-Length: ${ALLOWED.length}\nConnection: close\n`,
      ALLOWED,
    );
    // Node keeps the first Content-Type; the upstream gets the gateway's own either way.
    if (/^HTTP\/1\.1 200/.test(two)) assert.equal(contentTypes.at(-1), 'application/json');
    else assert.match(two, /^HTTP\/1\.1 (400|415)/);
  });
});

/**
 * Attack review of request integrity (reqint): a client holding a key allowed `echo` only tries to
 * make the upstream read a message other than the one the gateway judged. Each test sends bytes
 * through a real gateway to an upstream that records what it received, and reads those bytes as an
 * upstream's code or decoder would.
 *
 * "failed before: ..." tests failed on the code they were written against (the fix is named in the
 * commit that added them); "holds: ..." tests pass and would fail if the defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

/**
 * A deep merge as many hand-written ones are: it recurses into whatever the target already holds
 * under a key, inherited properties included. `constructor` leads from any object to its class, and
 * `prototype` from there to what every instance inherits.
 */
function naiveMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const key of Object.keys(source)) {
    const value = source[key];
    const into = target[key];
    if (
      typeof value === 'object' &&
      value !== null &&
      (typeof into === 'object' || typeof into === 'function')
    )
      naiveMerge(into as Record<string, unknown>, value as Record<string, unknown>);
    else target[key] = value;
  }
}

describe('review: request integrity (reqint)', () => {
  const key = newKey();
  let upstream: ScriptedUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen: Seen, res: ServerResponse) => {
      const m = seen.body as { id?: unknown } | undefined;
      if (m === undefined || Array.isArray(m) || m.id === undefined) return void res.writeHead(202).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [] } }));
    });
    // The default audit config: arguments are not read, so a large body's are left out of JSON.parse.
    gw = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'k', key }], '', {
        secret: 's'.repeat(40),
        resources: ['file:///public/*'],
      }),
    );
  });
  after(async () => {
    await gw?.close(100);
    await upstream?.close();
  });

  async function post(
    body: string,
    headers: Record<string, string> = {},
  ): Promise<{
    status: number;
    json: { id?: unknown; error?: { code: number; message: string } };
    seen: Seen[];
  }> {
    const before = upstream.seen.length;
    const r = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      body,
    });
    const json = (await r.json()) as { id?: unknown; error?: { code: number; message: string } };
    return { status: r.status, json, seen: upstream.seen.slice(before) };
  }

  const call = (args: string) =>
    `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":${args}}}`;

  /** A call whose arguments are large enough (over 128 KiB) to be left out of JSON.parse. */
  const largeCall = (args: string) => call(`{"pad":[${'1,'.repeat(70_000)}1],"x":${args}}`);

  it('holds (harness): the naive merge pollutes the class of the object it merges into', () => {
    class Session {}
    const merged: Record<string, unknown> = new Session() as Record<string, unknown>;
    naiveMerge(merged, JSON.parse('{"constructor":{"prototype":{"admin":true}}}') as Record<string, unknown>);
    // Every session made afterwards, for any client, inherits what this one body carried.
    assert.equal((new Session() as { admin?: unknown }).admin, true);
  });

  it('failed before: a "constructor" holding a "prototype" in the arguments is refused, never forwarded', async () => {
    // Forwarded as it was, an upstream that merges a call's arguments into an object of its own
    // (defaults, a session, a config) with such a merge changes what every later request of every
    // key inherits: the `__proto__` key the gateway refuses, reached another way.
    for (const args of [
      '{"constructor":{"prototype":{"task":{"ttl":1}}}}',
      '{"a":{"constructor":{"prot\\u006ftype":{"isAdmin":true}}}}',
      '{"c\\u006fnstructor":{"prototype":{}}}',
    ]) {
      const r = await post(call(args));
      assert.equal(r.status, 400, args);
      assert.equal(r.json.error?.code, -32600, args);
      assert.equal(r.json.id, 7);
      assert.deepEqual(r.seen, [], `${args} reached the upstream`);
    }
    const line = gw.auditLines.at(-1) as Record<string, unknown>;
    assert.equal(line.decision, 'invalid');
    assert.equal(line.reason, 'ERR_INVALID_REQUEST');
  });

  it('failed before: the same in a large body whose arguments are left out of JSON.parse is refused too', async () => {
    for (const args of [
      '{"constructor":{"prototype":{"task":{}}}}',
      '{"constructor":{"prot\\u006ftype":{}}}',
    ]) {
      const body = largeCall(args);
      assert.ok(body.length > 128 * 1024);
      const r = await post(body);
      assert.equal(r.status, 400);
      assert.equal(r.json.error?.code, -32600);
      assert.deepEqual(r.seen, [], 'a large body reached the upstream');
    }
  });

  it('holds: a "constructor" or a "prototype" key alone, or a string constructor, is forwarded', async () => {
    for (const args of ['{"constructor":"x","prototype":{}}', '{"prototype":{"constructor":{}}}']) {
      const r = await post(call(args));
      assert.equal(r.status, 200, args);
      assert.equal(r.seen.length, 1);
      assert.deepEqual(
        (r.seen[0]?.body as { params: { arguments: unknown } }).params.arguments,
        JSON.parse(args),
      );
    }
  });
});

/**
 * Go's encoding/json (v1; mark3labs/mcp-go, hand-written Go servers) matches a key to a struct field
 * by fold.go's foldName: each rune folded to the smallest of its unicode.SimpleFold orbit. The orbit
 * of `ß` (U+00DF) holds `ẞ` (U+1E9E, CaseFolding.txt `1E9E; S; 00DF`), so `straße` and `STRAẞE`
 * fill one field, the last winning. JavaScript's `/iu` matching folds by the same simple folding.
 */
function goFoldsAlike(a: string, b: string): boolean {
  const pattern = a.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  return new RegExp(`^${pattern}$`, 'iu').test(b);
}

describe('review: keys a case-folding decoder reads as one (reqint)', () => {
  const key = newKey();
  let upstream: ScriptedUpstream;
  let gw: TestGateway;

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen: Seen, res: ServerResponse) => {
      const m = seen.body as { id?: unknown };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { content: [] } }));
    });
    gw = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'k', key }], '', { secret: 's'.repeat(40), resources: [] }),
    );
  });
  after(async () => {
    await gw?.close(100);
    await upstream?.close();
  });

  it('failed before: keys that differ by ß and ẞ only (one field to Go) are refused as case twins', async () => {
    assert.ok(goFoldsAlike('straße', 'STRAẞE'));
    for (const args of ['{"straße":"a","STRAẞE":"b"}', '{"ẞ":"a","ß":2}', '{"o":{"ßx":"a","ẞX":2}}']) {
      const r = await fetch(`${gw.url}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-param-street': 'a',
        },
        body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":${args}}}`,
      });
      // Judged (and its Mcp-Param header checked) against both values, read by Go as the last one.
      assert.equal(r.status, 400, args);
      const json = (await r.json()) as { id: unknown; error: { code: number } };
      assert.equal(json.error.code, -32600);
      assert.equal(json.id, 3);
    }
    assert.equal(upstream.seen.length, 0);
  });

  it('holds: a key spelled with ß beside keys it does not fold with is forwarded', async () => {
    const seen = upstream.seen.length;
    const r = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"ß":1,"x":2}}}',
    });
    assert.equal(r.status, 200);
    assert.equal(upstream.seen.length, seen + 1);
  });
});

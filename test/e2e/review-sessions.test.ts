/**
 * Attack review of Streamable HTTP sessions and resumption: session binding, sealed event ids,
 * GET streams and 2026-07-28 `subscriptions/listen` streams held open, ended by a key's expiry, a
 * reload or a shutdown, DELETE, and the stateless revision mixed with a 2025 session.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { waitFor } from '../helpers/net.ts';

const SECRET = 'r'.repeat(40);
const PUBLIC = 'file:///public/a.txt';
const configFor = (url: string, keys: readonly KeySpec[]) =>
  reviewConfig(url, keys, '', { secret: SECRET, resources: ['file:///public/*'] });
const LISTEN = (id: number) =>
  `{"jsonrpc":"2.0","id":${id},"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{"resourceSubscriptions":["${PUBLIC}"]}}}`;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** A GET stream (or, with `body`, a POST) read to its end. */
async function open(url: string, key: string, body?: string): Promise<Answer> {
  const res = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const lineOf = (gw: TestGateway, answer: Answer) =>
  waitFor(
    () => gw.auditLines.find((l) => l.request_id === answer.headers.get('x-request-id')),
    3000,
    'the audit line',
  );

describe('sessions review: a stream ended by the gateway before the upstream answered it', () => {
  let upstream: ScriptedUpstream;
  /** Streams the upstream holds without ever answering their headers. */
  const waiting: ServerResponse[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((_seen: Seen, res) => void waiting.push(res));
  });
  after(async () => {
    for (const res of waiting) res.destroy();
    await upstream.close();
  });

  for (const kind of ['GET stream', 'subscriptions/listen'] as const) {
    it(`failed before: a ${kind} whose key expired before the upstream answered got 200 with an empty body and an 'allow' line`, async () => {
      // The key is valid when the stream opens (so it is forwarded and held), and expires while the
      // upstream has not sent its answer's headers: the expiry watch ended it with res.end(), which
      // wrote a bare 200 (no Content-Type, no body) that a client reads as an empty stream (GET) or
      // a missing JSON-RPC answer (listen), and the audit line said `allow`, 200.
      const key = newKey();
      const expires = new Date(Date.now() + 1200).toISOString();
      const gw = await startTestGateway(configFor(upstream.url, [{ label: 'soon', key, expires }]));
      try {
        const before = waiting.length;
        const pending = open(gw.mcpUrl, key, kind === 'GET stream' ? undefined : LISTEN(7));
        await waitFor(() => waiting.length > before || undefined, 3000, 'the stream at the upstream');
        const answer = await pending;
        assert.equal(answer.status, 401, answer.text);
        assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="mcpgate"');
        const body = JSON.parse(answer.text) as { id: unknown; error: { code: number } };
        assert.equal(body.error.code, -32001);
        assert.equal(body.id, kind === 'GET stream' ? null : 7);
        const line = await lineOf(gw, answer);
        assert.equal(line.status, 401);
        assert.equal(line.decision, 'unauthenticated');
        assert.equal(line.reason, 'ERR_STREAM_EXPIRED');
        // Its upstream side was given up.
        await waitFor(() => waiting.at(-1)?.destroyed || undefined, 3000, 'the upstream side cancelled');
      } finally {
        await gw.close(200);
      }
    });
  }

  it("failed before: a GET stream waiting on the upstream when a reload removed its key (or changed it) got 200 with an empty body and an 'allow' line", async () => {
    const gone: KeySpec = { label: 'gone', key: newKey() };
    const changed: KeySpec = { label: 'changed', key: newKey(), allow: ['echo'] };
    const gw = await startTestGateway(configFor(upstream.url, [gone, changed]));
    try {
      const before = waiting.length;
      const pendingGone = open(gw.mcpUrl, gone.key);
      const pendingChanged = open(gw.mcpUrl, changed.key);
      await waitFor(() => waiting.length >= before + 2 || undefined, 3000, 'both streams at the upstream');
      const next = parseConfigText(
        configFor(upstream.url, [{ ...changed, allow: ['echo', 'add'] }]),
        {},
        Date.now(),
      );
      assert.ok(next.config);
      const reloaded = await gw.runtime.reload(next.config);
      assert.equal(reloaded.applied, true);
      // The removed key: the refusal any request of it now gets.
      const refused = await pendingGone;
      assert.equal(refused.status, 401, refused.text);
      assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="mcpgate"');
      assert.equal((JSON.parse(refused.text) as { error: { code: number } }).error.code, -32001);
      const refusedLine = await lineOf(gw, refused);
      assert.equal(refusedLine.decision, 'unauthenticated');
      assert.equal(refusedLine.reason, 'ERR_AUTH_UNKNOWN_KEY');
      // The changed key: opened again, it is judged by the new config.
      const retry = await pendingChanged;
      assert.equal(retry.status, 503, retry.text);
      assert.equal(retry.headers.get('retry-after'), '1');
      const retryLine = await lineOf(gw, retry);
      assert.equal(retryLine.status, 503);
      assert.equal(retryLine.reason, 'ERR_CONFIG_RELOADED');
    } finally {
      await gw.close(200);
    }
  });

  it('failed before: a GET stream waiting on the upstream at shutdown got 200 with an empty body', async () => {
    const key = newKey();
    const gw = await startTestGateway(configFor(upstream.url, [{ label: 'k', key }]));
    const before = waiting.length;
    const pending = open(gw.mcpUrl, key);
    await waitFor(() => waiting.length > before || undefined, 3000, 'the stream at the upstream');
    await gw.close(500);
    const answer = await pending;
    assert.equal(answer.status, 503, answer.text);
    assert.equal((JSON.parse(answer.text) as { error: { code: number } }).error.code, -32003);
    const line = await lineOf(gw, answer);
    assert.equal(line.reason, 'ERR_SHUTTING_DOWN');
  });
});

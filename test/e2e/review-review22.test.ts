/**
 * Attack review of the rest of this session's changes: durations with their unit, a key's expires
 * on the calendar, the pin summary escaped, the socket refusals' request id and bytes, HTTP+SSE
 * pinning reported as needing a restart, a kept HTTP+SSE stream re-armed at its key's new expiry,
 * the OAuth token cache on the monotonic clock and Mcp-Param decimals. `hole:` tests say what
 * failed before their fix; `holds:` tests are attacks that did not get through.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { legacyClients, messageEvent } from '../helpers/legacy-session.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { waitFor } from '../helpers/net.ts';
import { createLogger } from '../../src/log/logger.ts';
import { logPinReport } from '../../src/pinning/report.ts';

const SECRET = 'r'.repeat(40);
const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } };

describe('review-review22: a kept HTTP+SSE stream across two reloads', () => {
  it("hole: a kept stream outlived its key's expiry set back by a second reload failed before: still open past it", async () => {
    // failed before: the stream's watch was re-armed only when the key's new expiry differed from
    // the one the stream opened with. A reload that moved alice's expiry a minute on re-armed it
    // there; a second one that set it back to what it was (the same instant) was "no change", so
    // the stream, kept for its owed call, went on past the expiry, carrying the upstream's messages.
    const upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S1`);
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const expires = new Date(Date.now() + 2500).toISOString();
    const conf = (a: KeySpec) =>
      reviewConfig(upstream.url, [a], '  transport: sse\n', { secret: SECRET, resources: [] });
    const gateway = await startTestGateway(conf({ ...alice, expires }));
    const opened: OpenedStream[] = [];
    try {
      const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);
      const a = await open(alice.key);
      await forwarded(alice.key, a.endpoint, call);
      const later = new Date(Date.now() + 60_000).toISOString();
      const lifted = await gateway.runtime.reload(
        parseConfigText(conf({ ...alice, expires: later }), {}, Date.now()).config!,
      );
      assert.ok(lifted.applied && lifted.endedStreams === 1);
      const back = await gateway.runtime.reload(
        parseConfigText(conf({ ...alice, expires }), {}, Date.now()).config!,
      );
      assert.ok(back.applied);
      assert.equal(upstream.streams[0]!.closed, false, 'kept for the answer it owes');
      const event = await a.stream.next(6000);
      const message = JSON.parse(event.data) as { id: number; error?: { code: number } };
      assert.equal(message.id, 1);
      assert.ok(message.error !== undefined, event.data);
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
      const get = await waitFor(
        () => gateway.auditLines.find((l) => l.http_method === 'GET'),
        3000,
        'its line',
      );
      assert.equal(get.reason, 'ERR_STREAM_EXPIRED');
    } finally {
      for (const s of opened) s.close();
      await gateway.close(200);
      await upstream.close();
    }
  });

  it("hole: a reload that lifted the key's expiry still ended the kept stream at the old one failed before: error at the old expiry", async () => {
    // failed before: rewatch passed `undefined` (no expiry now) to ExpiryWatch.start, whose default
    // for it is the principal's expiry, the old one: the stream a reload kept for its owed call was
    // ended there, the call's answer lost (an error told the client to retry a tool that ran).
    const upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S1`);
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const expires = new Date(Date.now() + 1500).toISOString();
    const conf = (a: KeySpec) =>
      reviewConfig(upstream.url, [a], '  transport: sse\n', { secret: SECRET, resources: [] });
    const gateway = await startTestGateway(conf({ ...alice, expires }));
    const opened: OpenedStream[] = [];
    try {
      const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);
      const a = await open(alice.key);
      const { id } = await forwarded(alice.key, a.endpoint, call);
      const lifted = await gateway.runtime.reload(parseConfigText(conf(alice), {}, Date.now()).config!);
      assert.ok(lifted.applied && lifted.endedStreams === 1);
      await new Promise((r) => setTimeout(r, Date.parse(expires) - Date.now() + 500));
      assert.equal(upstream.streams[0]!.closed, false, 'still open past the old expiry');
      a.up.res.write(messageEvent({ jsonrpc: '2.0', id, result: { content: [] } }));
      const event = await a.stream.next(3000);
      assert.deepEqual((JSON.parse(event.data) as { result?: unknown }).result, { content: [] });
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended, owing nothing');
    } finally {
      for (const s of opened) s.close();
      await gateway.close(200);
      await upstream.close();
    }
  });
});

describe("review-review22: serve's pretty log of what the upstream named", () => {
  it('hole: a tool name with bidi overrides reordered its pin warning on a terminal failed before: U+202E printed raw', () => {
    // failed before: the pretty lines (serve on a terminal) escaped C0 and C1 controls only. A pin
    // warning quotes the upstream's tool name and changed fields (pinning's threat is a compromised
    // upstream): U+202E turned the rest of the line around, U+2028 broke it for a reader that takes
    // it as a line break, and zero-width characters hid what the name was. `mcpgate pin` escapes
    // them (pin-command.ts); the log now does too.
    let written = '';
    const log = createLogger({
      level: 'info',
      pretty: true,
      color: false,
      destination: { write: (l) => (written += l) },
    });
    const name = 'search\u202e deifitou ton si\u2028\u200b';
    logPinReport(
      log,
      { kind: 'tools', name, change: 'changed', fields: ['desc\u2066ription'], sha256: undefined },
      'warn',
    );
    assert.equal(written.split('\n').length, 2, written);
    assert.doesNotMatch(written, /[\u200b-\u200f\u2028-\u202e\u2060-\u206f]/u, written);
    assert.match(written, /search\\u202e deifitou/);
    assert.match(written, /desc\\u2066ription/);
  });
});

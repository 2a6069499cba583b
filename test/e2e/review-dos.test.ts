/**
 * Attack review of resource exhaustion and streaming (src/integrity/cancels.ts, src/proxy/*,
 * src/pipeline/read-body.ts, ...): what one key can make the gateway hold, and for how long.
 * "hole:" tests failed before their fix ("failed before: ..."); "holds:" tests pin what already held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mintKey } from '../../src/auth/key-format.ts';
import { answerTagged, postBody, startRawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));

/** V8's gc, through a context of its own (the test runner does not pass --expose-gc). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Heap bytes in use after two full collections. */
function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('dos review: what the memory of pending requests holds', () => {
  let raw: RawUpstreamGateway;
  /** Requests the upstream received and holds open (never answered). */
  const held: ServerResponse[] = [];
  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((_tag, res) => {
        held.push(res);
      }),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    for (const res of held) res.destroy();
    await raw.close();
  });

  it('failed before: a request whose 1 MiB id was never answered (its client left) kept its id and tag in memory: 1,000 per key, 10,000 in all', async () => {
    // The map that lets a client's notifications/cancelled name the tag its request was forwarded
    // under keeps each pending request's client id and tag until the answer passes: about 2.4 MB
    // for an id of 1 MiB (base64url in the tag), 9.6 MB for one of 4 MiB (max_body_bytes). A key
    // that sends pings with such ids and leaves before each answer made the gateway hold 1,000 of
    // them (about 10 GB): the heap ran out and the process died.
    const gc = collector();
    const send = async (i: number) => {
      const id = `${'x'.repeat(1024 * 1024)}${i}`;
      const controller = new AbortController();
      const seen = held.length;
      const res = postBody(
        raw,
        KEY,
        JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' }),
        controller.signal,
      );
      while (held.length === seen) await new Promise((r) => setTimeout(r, 2));
      controller.abort();
      await res.catch(() => undefined);
    };
    await send(-1);
    for (const res of held.splice(0)) res.destroy();
    const lines = () => raw.gateway.auditLines.filter((l) => l.rpc_method === 'ping').length;
    while (lines() < 1) await new Promise((r) => setTimeout(r, 5));
    raw.gateway.finished.length = 0; // the test helper keeps every request's context
    const before = heapAfterGc(gc);
    const count = 24;
    for (let i = 0; i < count; i++) await send(i);
    for (const res of held.splice(0)) res.destroy();
    while (lines() < count + 1) await new Promise((r) => setTimeout(r, 5));
    raw.gateway.finished.length = 0;
    const grown = heapAfterGc(gc) - before;
    // Before the fix: about 60 MB (2.4 MB a request). After: what a run's noise makes.
    assert.ok(
      grown < 12 * 1024 * 1024,
      `the heap grew ${Math.round(grown / 1e6)} MB for ${count} left requests`,
    );
    // Every one of them has its line, as left by its client.
    const pings = raw.gateway.auditLines.filter((l) => l.rpc_method === 'ping');
    assert.equal(pings.length, count + 1);
    for (const line of pings) assert.equal(line.aborted, true);
  });
});

describe('dos review: the event loop and request headers', () => {
  let raw: RawUpstreamGateway;
  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((tag, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: tag, result: { content: [] } }));
      }),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  it('hole: an Mcp-Method, Mcp-Name or Mcp-Param header with 16,000 blanks inside held the event loop 0.2-0.4 s per request', async () => {
    // Node's parser trims a header value's ends, not its inside; the gateway trimmed optional
    // whitespace with /^[ \t]+|[ \t]+$/g, which tries `[ \t]+$` from every blank of the run: quadratic.
    // One request of a key (one token) held every other request for about 0.4 s; 60 in a burst, 25 s.
    const blanks = `x${' '.repeat(16_000)}x`;
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { q: 'y' } },
    });
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const started = performance.now();
    for (const header of ['mcp-method', 'mcp-name', 'mcp-param-q']) {
      const res = await fetch(raw.gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${KEY}`,
          [header]: blanks,
        },
        body,
      });
      assert.equal(res.status, 400);
      const error = ((await res.json()) as { error: { code: number } }).error;
      assert.equal(error.code, -32020);
    }
    const elapsed = performance.now() - started;
    delay.disable();
    // Before the fix: 0.2-0.47 s of delay each, 0.65-1.3 s in all. After: 20 ms in all.
    assert.ok(delay.max < 100e6, `the event loop was held ${Math.round(delay.max / 1e6)} ms`);
    assert.ok(elapsed < 300, `three refusals took ${Math.round(elapsed)} ms`);
    const lines = raw.gateway.auditLines.filter((l) => l.reason === 'ERR_HEADER_MISMATCH');
    assert.equal(lines.length, 3);
  });
});

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

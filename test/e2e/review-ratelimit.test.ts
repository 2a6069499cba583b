/**
 * Review of rate limiting (src/ratelimit/, src/pipeline/rate-limit.ts, admission.ts): attacks on
 * the rate a key gets, on what its refusals tell it, and on the store's failures.
 *
 * "failed before: ..." tests failed on the code they were written against (879b211) and pass with
 * the fix of their commit; "holds: ..." tests passed there and guard a defence.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HEADERS, makeKey, postAs, startCountingUpstream } from '../helpers/counting-upstream.ts';
import { startAuthServer, startOAuthGateway } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import type { CountingUpstream, TestKey } from '../helpers/counting-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import {
  clientHeaders,
  keyedConfig,
  pingPost,
  raw,
  short,
  startRawUpstream,
  statuses,
} from '../helpers/raw-http.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import type { RedisServer } from '../helpers/redis-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function configText(upstreamUrl: string, keys: TestKey[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    listen: '127.0.0.1:0',
    upstream: { url: upstreamUrl },
    auth: { session_secret: 'r'.repeat(40) },
    keys: keys.map((k) => k.config),
    ...extra,
  });
}

const ping = (id: number | string) => ({ jsonrpc: '2.0', id, method: 'ping' });
const call = (id: number | string, name: string) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: {} },
});
const batch = (...messages: unknown[]) => JSON.stringify(messages);

type Answer = Awaited<ReturnType<typeof postAs>>;

/** Seconds in Retry-After, in the RateLimit field's `t` and in the error message: all must agree. */
function waits(res: Answer): { header: number; t: number; message: number } {
  const t = /;t=(\d+)/.exec(res.headers.get('ratelimit') ?? '')?.[1];
  const message = /retry after (\d+) s/.exec(res.text)?.[1];
  return { header: Number(res.headers.get('retry-after')), t: Number(t), message: Number(message) };
}

/**
 * A client that does what a 429 says: waits Retry-After seconds and sends the same request again,
 * up to `tries` times. Returns the statuses it saw.
 */
async function obedient(
  url: string,
  key: TestKey,
  body: string,
  tries: number,
): Promise<{ statuses: number[]; waited: number[]; first: Answer | undefined }> {
  const statuses: number[] = [];
  const waited: number[] = [];
  let first: Answer | undefined;
  for (let i = 0; i < tries; i++) {
    const res = await postAs(url, key, body);
    first ??= res;
    statuses.push(res.status);
    if (res.status !== 429) break;
    const seconds = Number(res.headers.get('retry-after'));
    waited.push(seconds);
    await sleep(seconds * 1000 + 50);
  }
  return { statuses, waited, first };
}

for (const backend of ['memory', 'redis'] as const) {
  describe(`Retry-After of a request refused after its prepaid token (${backend})`, () => {
    let upstream: CountingUpstream;
    let redis: RedisServer | undefined;
    const gateways: TestGateway[] = [];
    before(async () => {
      upstream = await startCountingUpstream();
      if (backend === 'redis') redis = await startRedisServer();
    });
    after(async () => {
      for (const g of gateways) await g.close(100);
      await upstream?.close();
      await redis?.close();
    });

    async function gatewayFor(keys: TestKey[]): Promise<TestGateway> {
      const rateLimit =
        backend === 'redis'
          ? { backend, redis: { url: redis!.url, prefix: `p${gateways.length}:`, timeout: '2s' } }
          : { backend };
      const warm = makeKey('warm', { capacity: 1000, refill_per_second: 1000 });
      const g = await startTestGateway(configText(upstream.url, [...keys, warm], { rate_limit: rateLimit }));
      gateways.push(g);
      // A decision before the connection to Redis is up is an on_store_error fallback: wait it out.
      await waitFor(async () =>
        (await postAs(g.mcpUrl, warm, JSON.stringify(ping(0)))).status === 200 ? true : undefined,
      );
      return g;
    }

    /**
     * A batch of 3 with 2 tokens left: the prepay takes one (1 left), the other two cannot be paid
     * (429), and Retry-After said 1 s: the time until the bucket holds the 2 the rest needed, not
     * the 3 the batch needs when it is sent again. A client that obeys it is refused again, and
     * loses another prepaid token each time: with refill 1/s it never gets its batch through.
     */
    it('failed before: a batch refused after its prepay gets the Retry-After of the whole batch; an obedient client gets through', async () => {
      const key = makeKey('batcher', { capacity: 3, refill_per_second: 1 });
      const g = await gatewayFor([key]);
      assert.equal((await postAs(g.mcpUrl, key, JSON.stringify(ping(1)))).status, 200); // 2 left
      const seen = upstream.counts.messages;
      const run = await obedient(g.mcpUrl, key, batch(ping(2), ping(3), ping(4)), 3);
      assert.deepEqual(
        run.statuses,
        [429, 200],
        `obeying Retry-After (${run.waited.join(', ')} s): refused once, then through`,
      );
      assert.deepEqual(
        run.first && waits(run.first),
        { header: 2, t: 2, message: 2 },
        'the 3 are there in 2 s',
      );
      assert.equal(upstream.counts.messages, seen + 3, 'only the batch that passed reached the upstream');
    });

    /**
     * A tools/call whose tool bucket is empty: its key token prepaid, the tool refused. Retry-After
     * said when the tool bucket has a token again, and nothing of the key's bucket, which the retry's
     * prepay needs a token of as well: the retry was refused once more.
     */
    it("failed before: a tools/call refused for its tool's bucket waits for the key's token too", async () => {
      const key = makeKey('caller', {
        capacity: 2,
        refill_per_second: 0.5,
        tools: { slow: { capacity: 1, refill_per_second: 1 } },
      });
      const g = await gatewayFor([key]);
      assert.equal((await postAs(g.mcpUrl, key, JSON.stringify(call(1, 'slow')))).status, 200);
      // Key: 1 left, the next prepay takes it; tool: empty for 1 s. The retry needs a key token: 2 s.
      const refused = await postAs(g.mcpUrl, key, JSON.stringify(call(2, 'slow')));
      assert.equal(refused.status, 429);
      assert.deepEqual(waits(refused), { header: 2, t: 2, message: 2 });
      await sleep(2050);
      assert.equal((await postAs(g.mcpUrl, key, JSON.stringify(call(3, 'slow')))).status, 200);
    });
  });
}

for (const backend of ['memory', 'redis'] as const) {
  /**
   * An OAuth subject's limits come from the grant its token matches, but its buckets were keyed by
   * the subject alone, and each request refilled and capped the shared bucket with its own token's
   * capacity and rate. A subject allowed a strict grant (`admin`: 2 calls, one token per 1000 s) and
   * a generous one (`reader`: 100, 100 a second), by asking its authorization server for a token
   * with fewer scopes, refilled the strict bucket with the generous token's rate: one reader ping and
   * the admin token had its 2 calls back. With Redis the reader's take even set the bucket to
   * expire when it would be full under the reader's limits, dropping the admin's debt with it.
   */
  describe(`OAuth grants with different rate limits (${backend})`, () => {
    let as: TestAuthServer;
    let upstream: CountingUpstream;
    let redis: RedisServer | undefined;
    let gateway: TestGateway;
    before(async () => {
      as = await startAuthServer();
      upstream = await startCountingUpstream();
      if (backend === 'redis') redis = await startRedisServer();
      const store =
        backend === 'redis'
          ? ['rate_limit:', '  backend: redis', '  redis:', `    url: ${redis!.url}`, '    timeout: 2s']
          : [];
      gateway = await startOAuthGateway(upstream.url, as.issuer, as.jwksUri, [
        '      - name: admin',
        '        when: { scope: mcp:admin }',
        '        allow: ["*"]',
        '        rate_limit: { capacity: 2, refill_per_second: 0.001 }',
        '      - name: reader',
        '        when: { scope: mcp:read }',
        '        allow: [search]',
        '        rate_limit: { capacity: 100, refill_per_second: 100 }',
        ...store,
      ]);
      if (redis !== undefined) {
        const warm = await as.sign({ aud: gateway.mcpUrl, sub: 'warm', scope: 'mcp:read' });
        await waitFor(async () =>
          (await bearerPost(gateway.mcpUrl, warm, JSON.stringify(ping(0)))).status === 200 ? true : undefined,
        );
      }
    });
    after(async () => {
      await gateway?.close(100);
      await upstream?.close();
      await redis?.close();
      await as?.close();
    });

    it("failed before: a subject's token of a generous grant does not refill its strict grant's bucket", async () => {
      const admin = await as.sign({ aud: gateway.mcpUrl, sub: 'alice', scope: 'mcp:admin' });
      const reader = await as.sign({ aud: gateway.mcpUrl, sub: 'alice', scope: 'mcp:read' });
      const adminCall = (id: number) => bearerPost(gateway.mcpUrl, admin, JSON.stringify(call(id, 'danger')));
      const first = await adminCall(1);
      assert.equal(first.status, 200, first.text);
      assert.equal((await adminCall(2)).status, 200);
      assert.equal((await adminCall(3)).status, 429, 'the admin grant: 2 calls, then one per 1000 s');
      for (let i = 0; i < 5; i++) {
        await sleep(30); // (the shared bucket had 3 tokens of the reader's rate back by then)
        assert.equal((await bearerPost(gateway.mcpUrl, reader, JSON.stringify(ping(10 + i)))).status, 200);
      }
      const seen = upstream.counts.messages;
      const after = [(await adminCall(4)).status, (await adminCall(5)).status];
      assert.deepEqual(
        after,
        [429, 429],
        'the reader token has its own bucket: the admin one is still empty',
      );
      assert.equal(upstream.counts.messages, seen);
    });
  });
}

async function bearerPost(url: string, token: string, body: string): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...HEADERS, authorization: `Bearer ${token}` },
    body,
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/**
 * The schema takes any finite capacity >= 1 and refill >= 0. The headers printed the numbers with
 * String(): past 10^15 a Structured Field integer has too many digits (RFC 9651 allows 15, and a
 * parser then drops the whole field), and past 10^21 they came out as `1e+22`, which is neither an
 * sf-integer nor HTTP delay-seconds: a client could not read when to come back.
 */
describe('RateLimit and Retry-After with extreme limits', () => {
  let upstream: CountingUpstream;
  let gateway: TestGateway;
  const huge = makeKey('huge', {
    capacity: 1e16,
    refill_per_second: 1,
    tools: { x: { capacity: 1, refill_per_second: 1 } },
  });
  const glacial = makeKey('glacial', { capacity: 1, refill_per_second: 1e-22 });
  before(async () => {
    upstream = await startCountingUpstream();
    gateway = await startTestGateway(configText(upstream.url, [huge, glacial]));
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  const SF_INTEGER = /^-?\d{1,15}$/;
  /** Every number in the RateLimit and RateLimit-Policy fields, and Retry-After. */
  function numbers(res: Answer): string[] {
    const fields = `${res.headers.get('ratelimit') ?? ''},${res.headers.get('ratelimit-policy') ?? ''}`;
    return [...fields.matchAll(/;[a-z]+=([^;,\s]*)/g)].map((m) => m[1]!);
  }

  it('failed before: every parameter is an sf-integer and Retry-After is delay-seconds', async () => {
    assert.equal((await postAs(gateway.mcpUrl, glacial, JSON.stringify(ping(1)))).status, 200);
    const refused = await postAs(gateway.mcpUrl, glacial, JSON.stringify(ping(2)));
    assert.equal(refused.status, 429);
    // A key bucket of 10^16 (q= would have 17 digits) whose tool bucket refuses the second call.
    assert.equal((await postAs(gateway.mcpUrl, huge, JSON.stringify(call(3, 'x')))).status, 200);
    const more = await postAs(gateway.mcpUrl, huge, JSON.stringify(call(4, 'x')));
    assert.equal(more.status, 429);
    for (const res of [refused, more]) {
      const found = numbers(res);
      assert.ok(found.length > 0);
      for (const n of found)
        assert.match(n, SF_INTEGER, `${res.headers.get('ratelimit')} ${res.headers.get('ratelimit-policy')}`);
    }
    assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(refused.text, /retry after \d+ s/);
  });
});

describe('pipelined requests on one connection', () => {
  it('holds: each pays its token; past the bucket they get 429, never reach the upstream, and have one line each', async () => {
    const upstream = await startRawUpstream();
    const secret = mintKey(randomBytes(32));
    const g = await startTestGateway(
      keyedConfig(upstream.url, secret, { key: { rate_limit: { capacity: 2, refill_per_second: 0.01 } } }),
    );
    try {
      const port = Number(new URL(g.url).port);
      const headers = clientHeaders(port, secret);
      const send = (ids: number[]) => raw(port, ids.map((i) => pingPost(headers, i)).join(''), 1500);
      assert.deepEqual(statuses((await send([1, 2, 3, 4, 5, 6])).text), [200, 200, 429, 429, 429, 429]);
      // Known empty now: refused without the store, on a fresh connection, every one answered.
      assert.deepEqual(statuses((await send([7, 8, 9])).text), [429, 429, 429]);
      assert.equal(upstream.seen.length, 2);
      await waitFor(() => (g.auditLines.length >= 9 ? true : undefined), 2000, 'nine lines');
      assert.deepEqual(
        g.auditLines.map(short),
        [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `p${i} POST ${i <= 2 ? '200 allow' : '429 rate_limited'}`),
      );
    } finally {
      await g.close(100);
      await upstream.close();
    }
  });
});

/**
 * Review resume: an initialize's POST stream that ends after the server's priming event (SEP-1699)
 * is resumed with a GET of the new session on another replica sharing the secret, or on the same
 * gateway after a restart: the event ids of that stream carry what the resume needs
 * (src/integrity/event-ids.ts sealOpening), so no replica has to remember it. A real SDK server
 * (with a replaying event store, its initialize stream cut after the priming event) and the real SDK
 * client; the attacks show the mechanism still refuses an event id of another key or session, or a
 * changed one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { waitFor } from '../helpers/net.ts';
import { hash } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const SECRET = 'r'.repeat(40);
const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INITIALIZE =
  '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}';

describe('review resume: an initialize stream resumed on another replica or after a restart', () => {
  let upstream: SdkUpstream;
  let a: TestGateway;
  let b: TestGateway;
  const alice = newKey();
  const bob = newKey();
  let config = '';
  before(async () => {
    upstream = await startSdkUpstream({ replay: true, cutInitialize: true });
    config = reviewConfig(
      upstream.url,
      [
        { label: 'alice', key: alice },
        { label: 'bob', key: bob },
      ],
      '',
      { secret: SECRET, resources: [] },
    );
    a = await startTestGateway(config);
    b = await startTestGateway(config);
  });
  after(async () => {
    await a.close(100);
    await b.close(100);
    await upstream.close();
  });

  /** A client of `key` whose requests go to `post`'s gateway and whose GETs go where `get` says. */
  function sdkClient(key: string, post: string, get: (url: URL) => Promise<string>) {
    const client = new Client({ name: 'sdk', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(post), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
      reconnectionOptions: {
        initialReconnectionDelay: 10,
        maxReconnectionDelay: 50,
        reconnectionDelayGrowFactor: 1,
        maxRetries: 1,
      },
      fetch: async (url, init) => {
        if (init?.method === 'GET') return fetch(await get(new URL(String(url))), init);
        return fetch(url, init);
      },
    });
    return { client, transport };
  }

  it('hole: failed before: the SDK client connects when its initialize stream is resumed on another replica', async () => {
    const gets: string[] = [];
    const { client, transport } = sdkClient(alice, a.mcpUrl, async () => {
      gets.push('b');
      return b.mcpUrl;
    });
    try {
      await client.connect(transport, { timeout: 3000 });
      assert.equal(client.getServerVersion()?.name, 'test-upstream');
      assert.ok(gets.length >= 1, 'the initialize was resumed with a GET');
      // The session works on either replica afterwards.
      const echoed = await client.callTool({ name: 'echo', arguments: { message: 'hi' } });
      assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: hi' }]);
    } finally {
      await client.close();
    }
    // Replica b's line for the resumed stream: allowed, and no refused event on it.
    const resumed = await waitFor(
      () => b.auditLines.find((l) => l.http_method === 'GET'),
      2000,
      'a GET line',
    );
    assert.equal(resumed.decision, 'allow', JSON.stringify(resumed));
    assert.equal(resumed.reason, undefined);
  });

  it('hole: failed before: the SDK client connects when the gateway restarts between its initialize and the resume', async () => {
    const port = new URL(a.mcpUrl).port;
    let restarted: TestGateway | undefined;
    const { client, transport } = sdkClient(alice, a.mcpUrl, async (url) => {
      if (restarted === undefined) {
        await a.close(100);
        // The same address, the same config: nothing the first process knew.
        restarted = await startTestGateway(config, {}, { listen: `127.0.0.1:${port}` });
        a = restarted;
      }
      return url.href;
    });
    try {
      await client.connect(transport, { timeout: 3000 });
      assert.ok(restarted !== undefined, 'the initialize was resumed with a GET');
      assert.equal(client.getServerVersion()?.name, 'test-upstream');
    } finally {
      await client.close();
    }
  });

  /** An initialize of `key` on `gw` whose POST stream ends after the priming event. */
  async function initialize(gw: TestGateway, key: string): Promise<{ session: string; eventId: string }> {
    const res = await fetch(gw.mcpUrl, {
      method: 'POST',
      headers: { ...HEADERS, authorization: `Bearer ${key}` },
      body: INITIALIZE,
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.doesNotMatch(text, /"result"/, 'the stream ends before its answer');
    const eventId = /^id: (.+)$/m.exec(text)?.[1];
    assert.ok(eventId !== undefined, text);
    return { session: res.headers.get('mcp-session-id') ?? '', eventId };
  }
  async function resume(gw: TestGateway, key: string, session: string, eventId: string) {
    const res = await fetch(gw.mcpUrl, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${key}`,
        'mcp-session-id': session,
        'last-event-id': eventId,
      },
    });
    return { status: res.status, text: await res.text() };
  }

  it("hole: failed before: an initialize's event id resumes its own session on the other replica, and holds: no other session", async () => {
    const first = await initialize(a, alice);
    const second = await initialize(a, alice);
    // Its own session, on the other replica: the initialize's answer.
    const own = await resume(b, alice, first.session, first.eventId);
    assert.equal(own.status, 200);
    assert.match(own.text, /^data: \{.*"protocolVersion":"2025-11-25"/m);
    assert.match(own.text, /"id":0[,}]/);
    // Another session of the same key: refused before the upstream.
    const crossed = await resume(b, alice, second.session, first.eventId);
    assert.equal(crossed.status, 400);
    assert.equal(b.auditLines.at(-1)?.reason, 'ERR_INVALID_REQUEST');
  });

  it("holds: another key's initialize event id is refused, on its session or the key's own", async () => {
    const alices = await initialize(a, alice);
    const bobs = await initialize(a, bob);
    // Bob presenting Alice's session is refused for the session (404) before the event id is read.
    assert.equal((await resume(b, bob, alices.session, alices.eventId)).status, 404);
    // On his own session, Alice's event id opens as nothing.
    assert.equal((await resume(b, bob, bobs.session, alices.eventId)).status, 400);
  });

  it('holds: an initialize event id whose answer digest was changed, or moved onto a plain seal, is refused', async () => {
    const init = await initialize(a, alice);
    const parts = /^(.*)\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{16})$/.exec(init.eventId);
    assert.ok(parts !== null, `an opening: ${init.eventId}`);
    const [, id, , mac] = parts as unknown as [string, string, string, string];
    // The digest of another tag, as event-ids.ts answerDigest makes it (a client cannot choose the
    // request whose answer it takes).
    const digest = hash('sha256', 'g1nXXXX.n0.AAAAAAAAAAAAAAAAAAAAAA', 'base64url').slice(0, 22);
    const other = `${id}.${digest}.${mac}`;
    assert.equal((await resume(b, alice, init.session, other)).status, 400);
    assert.equal((await resume(b, alice, init.session, `${id}.${mac}`)).status, 400);
    assert.equal((await resume(b, alice, init.session, `${init.eventId}x`)).status, 400);
  });
});

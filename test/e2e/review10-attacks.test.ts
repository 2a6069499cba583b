/**
 * Tenth attack review, through a real gateway in front of hand-scripted upstreams. `hole:` tests
 * assert the secure behaviour and failed on the code they were written against (each says what
 * happened then); `held:` tests are attacks that did not get through.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { waitFor } from '../helpers/net.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { ACCEPT, answerJson, bearer, openRequest, postJson } from '../helpers/open-request.ts';
import { startAuthServer, startOAuthGateway } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';

const SECRET = 'r'.repeat(40);
const MODERN = '2026-07-28';
const META = `"_meta":{"io.modelcontextprotocol/protocolVersion":"${MODERN}"}`;

const configFor = (upstreamUrl: string, keys: readonly KeySpec[], extra = '') =>
  reviewConfig(upstreamUrl, keys, extra, { secret: SECRET, resources: [] });

// -----------------------------------------------------------------------------------------------
// Long-lived POST streams
// -----------------------------------------------------------------------------------------------

describe('review10: long-lived POST streams (2026-07-28 subscriptions/listen)', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  /** The upstream's open listen streams, to push notifications on. */
  const listening: ServerResponse[] = [];
  let bigSent = 0;
  const mallory: KeySpec = { label: 'mallory', key: newKey(), resources: ['file:///public/*'] };
  const alice: KeySpec = { label: 'alice', key: newKey(), resources: ['file:///public/*'] };
  let upstreamUrl = '';

  before(async () => {
    upstream = await startScriptedUpstream();
    upstreamUrl = upstream.url;
    upstream.set((seen, res) => {
      const method = (seen.body as { method?: string } | undefined)?.method;
      if (
        method === 'tools/call' &&
        (seen.body as { params?: { arguments?: { big?: boolean } } }).params?.arguments?.big
      ) {
        // A long result streamed as many events: far more than the sockets between hold.
        const id = (seen.body as { id: unknown }).id;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        bigSent++;
        const chunk = `data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"message":"${'x'.repeat(60_000)}"}}\n\n`;
        let n = 0;
        const pump = () => {
          while (n < 400) {
            n++;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end(`data: {"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[]}}\n\n`);
        };
        res.on('error', () => {});
        pump();
        return;
      }
      if (method === 'subscriptions/listen') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        listening.push(res);
        return;
      }
      if (seen.method !== 'POST') return void res.writeHead(405).end();
      if ((seen.body as { id?: unknown }).id === undefined) return void res.writeHead(202).end();
      answerJson(seen, res);
    });
    // A short send timeout: a client that stops reading is cut after it (60 s by default). Each key
    // may have both connections (max_in_flight defaults to a quarter of them, here 1): the send
    // timeout alone must free them.
    gateway = await startTestGateway(
      configFor(
        upstreamUrl,
        [mallory, alice],
        '  connections: 2\nlimits:\n  send_timeout: 1s\nrate_limit:\n  max_in_flight: 2\n',
      ),
    );
  });
  after(async () => {
    for (const r of listening) r.destroy();
    await gateway.close(200);
    await upstream.close();
  });

  const listen = (key: string, id: number, url = gateway.mcpUrl) =>
    openRequest(
      url,
      'POST',
      { ...bearer(key), 'content-type': 'application/json' },
      `{"jsonrpc":"2.0","id":${id},"method":"subscriptions/listen","params":{${META},"notifications":{"resourceSubscriptions":["file:///public/a.txt"]}}}`,
    );

  it("hole: one key's open subscriptions/listen streams use up upstream.connections and every other key's requests hang", async () => {
    // failed before: mallory's two listen streams hold both pool connections (they are POSTs: no
    // max_streams, no stream pool), and alice's ping waits in undici's queue until she gives up.
    // Control: with nothing open, alice is served.
    const control = await postJson(gateway.mcpUrl, alice.key, '{"jsonrpc":"2.0","id":6,"method":"ping"}');
    assert.equal(control.status, 200, control.text);
    const streams = [await listen(mallory.key, 1), await listen(mallory.key, 2)];
    try {
      for (const s of streams) assert.equal(s.status, 200);
      let status = 0;
      let failure = '';
      try {
        const res = await postJson(
          gateway.mcpUrl,
          alice.key,
          '{"jsonrpc":"2.0","id":7,"method":"ping"}',
          {},
          AbortSignal.timeout(3000),
        );
        status = res.status;
      } catch (err) {
        failure = (err as Error).name;
      }
      assert.equal(
        status,
        200,
        `alice's ping was not answered (${failure}): mallory's long-lived POST streams hold every upstream connection`,
      );
    } finally {
      for (const s of streams) s.close();
      await waitFor(() => listening.every((r) => r.destroyed || r.writableEnded) || undefined, 3000).catch(
        () => {},
      );
    }
  });

  it("hole: a key that stops reading two streamed tool results holds every upstream connection; another key's ping hangs", async () => {
    // failed before: the same exhaustion on any revision: a POST's SSE answer is relayed with
    // backpressure (the upstream socket is paused while the client reads nothing), without a
    // deadline, so a client that never reads keeps its pool connection for as long as it likes.
    const control = await postJson(gateway.mcpUrl, alice.key, '{"jsonrpc":"2.0","id":9,"method":"ping"}');
    assert.equal(control.status, 200, control.text);
    const held: Socket[] = [];
    const u = new URL(gateway.mcpUrl);
    for (let i = 0; i < 2; i++) {
      const body = `{"jsonrpc":"2.0","id":${10 + i},"method":"tools/call","params":{"name":"echo","arguments":{"big":true}}}`;
      const socket = connect(Number(u.port), u.hostname);
      socket.on('error', () => {});
      socket.write(
        `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${mallory.key}\r\n` +
          `Content-Type: application/json\r\nAccept: ${ACCEPT}\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      socket.pause(); // never reads its answer
      held.push(socket);
    }
    try {
      await waitFor(() => bigSent >= 2 || undefined, 5000, 'both big answers started upstream');
      let status = 0;
      let failure = '';
      try {
        status = (
          await postJson(
            gateway.mcpUrl,
            alice.key,
            '{"jsonrpc":"2.0","id":8,"method":"ping"}',
            {},
            AbortSignal.timeout(3000),
          )
        ).status;
      } catch (err) {
        failure = (err as Error).name;
      }
      assert.equal(status, 200, `alice's ping was not answered (${failure}) while mallory reads nothing`);
      // Each cut call has its audit line, saying why.
      const cut = await waitFor(
        () => {
          const lines = gateway.auditLines.filter((l) => l.reason === 'ERR_CLIENT_STALLED');
          return lines.length >= 2 ? lines : undefined;
        },
        5000,
        "the stalled calls' audit lines",
      );
      for (const line of cut) assert.equal(line.key, 'mallory');
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('hole: a key removed by a reload keeps receiving notifications on its open subscriptions/listen stream', async () => {
    // failed before: reload ends only GET streams (handler.streams); a 2026-07-28 client's notification
    // stream is a POST, which "finishes under the config it started with": it never finishes.
    const gw = await startTestGateway(configFor(upstreamUrl, [mallory, alice]));
    const before = listening.length;
    const stream = await listen(mallory.key, 3, gw.mcpUrl);
    try {
      assert.equal(stream.status, 200);
      await waitFor(() => listening.length > before || undefined, 3000, 'the listen stream upstream');
      const outcome = parseConfigText(configFor(upstreamUrl, [alice]), {}, Date.now());
      assert.ok(outcome.config);
      const reloaded = await gw.runtime.reload(outcome.config);
      assert.equal(reloaded.applied, true);
      // The upstream goes on notifying the session it was told to.
      const marker = 'after-revocation-' + randomBytes(4).toString('hex');
      const up = listening[listening.length - 1]!;
      if (!up.destroyed)
        up.write(
          `data: {"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///public/a.txt","note":"${marker}"}}\n\n`,
        );
      await new Promise((r) => setTimeout(r, 400));
      assert.ok(
        !stream.text().includes(marker),
        `the removed key still receives the upstream's notifications: ${stream.text().slice(-200)}`,
      );
    } finally {
      stream.close();
      await gw.close(200);
    }
  });
});

describe('review10 fix: a subscriptions/listen stream is held like a GET stream', () => {
  let upstream: ScriptedUpstream;
  const listening: ServerResponse[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      if ((seen.body as { method?: string } | undefined)?.method === 'subscriptions/listen') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        listening.push(res);
        return;
      }
      answerJson(seen, res);
    });
  });
  after(async () => {
    for (const r of listening) r.destroy();
    await upstream.close();
  });

  it("a listen beyond the key's max_streams gets 429 with its id, unforwarded; a closed one gives its slot back", async () => {
    const one: KeySpec = { label: 'one', key: newKey(), resources: ['file:///public/*'], maxStreams: 1 };
    const gateway = await startTestGateway(configFor(upstream.url, [one]));
    const body = (id: number) =>
      `{"jsonrpc":"2.0","id":${id},"method":"subscriptions/listen","params":{${META},"notifications":{"resourceSubscriptions":["file:///public/a.txt"]}}}`;
    const open = (id: number) =>
      openRequest(
        gateway.mcpUrl,
        'POST',
        { ...bearer(one.key), 'content-type': 'application/json' },
        body(id),
      );
    const first = await open(1);
    try {
      assert.equal(first.status, 200);
      await waitFor(() => listening.length >= 1 || undefined, 3000, 'the first listen upstream');
      const forwarded = upstream.seen.length;
      const second = await postJson(gateway.mcpUrl, one.key, body(2));
      assert.equal(second.status, 429, second.text);
      assert.equal((JSON.parse(second.text) as { id: unknown }).id, 2);
      assert.equal(upstream.seen.length, forwarded, 'the refused listen never reached the upstream');
      // A ping is not a stream: it is served while the listen is open.
      assert.equal(
        (await postJson(gateway.mcpUrl, one.key, '{"jsonrpc":"2.0","id":3,"method":"ping"}')).status,
        200,
      );
      first.close();
      await waitFor(() => gateway.handler.streams.size === 0 || undefined, 3000, 'the slot back');
      const third = await open(4);
      assert.equal(third.status, 200);
      third.close();
    } finally {
      first.close();
      await gateway.close(200);
    }
  });
});

// -----------------------------------------------------------------------------------------------
// GET streams and time
// -----------------------------------------------------------------------------------------------

describe('review10: GET streams outliving their credential', () => {
  let upstream: ScriptedUpstream;
  const gets: ServerResponse[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        gets.push(res);
        return;
      }
      if ((seen.body as { id?: unknown } | undefined)?.id === undefined) return void res.writeHead(202).end();
      answerJson(seen, res);
    });
  });
  after(async () => {
    for (const r of gets) r.destroy();
    await upstream.close();
  });

  it("hole: a key's open GET stream goes on delivering the upstream's messages after the key's `expires`", async () => {
    // failed before: `expires` is checked only when a request authenticates; nothing ends an open GET
    // stream when its key (or an OAuth token's `exp`) runs out, so the stream lives as long as the
    // client keeps it (the same holds for an OAuth subject's stream after its token expired).
    const expiresAt = Date.now() + 1500;
    const temp: KeySpec = { label: 'temp', key: newKey(), expires: new Date(expiresAt).toISOString() };
    const gateway = await startTestGateway(configFor(upstream.url, [temp]));
    const before = gets.length;
    const stream = await openRequest(gateway.mcpUrl, 'GET', {
      authorization: `Bearer ${temp.key}`,
      accept: 'text/event-stream',
    });
    try {
      assert.equal(stream.status, 200);
      await waitFor(() => gets.length > before || undefined, 3000, 'the GET upstream');
      await waitFor(() => Date.now() > expiresAt + 200 || undefined, 4000, 'expiry');
      // Control: the key is refused now.
      const refused = await postJson(gateway.mcpUrl, temp.key, '{"jsonrpc":"2.0","id":1,"method":"ping"}');
      assert.equal(refused.status, 401, refused.text);
      const marker = 'after-expiry-' + randomBytes(4).toString('hex');
      const up = gets[gets.length - 1]!;
      if (!up.destroyed)
        up.write(
          `data: {"jsonrpc":"2.0","id":99,"method":"elicitation/create","params":{"message":"${marker}","requestedSchema":{"type":"object","properties":{}}}}\n\n`,
        );
      await new Promise((r) => setTimeout(r, 400));
      assert.ok(
        !stream.text().includes(marker),
        `the expired key still receives the upstream's requests on its GET stream: ${stream.text().slice(-160)}`,
      );
      assert.ok(stream.ended(), 'the stream was ended');
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.http_method === 'GET' && l.key === 'temp'),
        3000,
        'the stream audit line',
      );
      assert.equal(line.reason, 'ERR_STREAM_EXPIRED');
    } finally {
      stream.close();
      await gateway.close(200);
    }
  });
});

describe("review10 fix: an OAuth subject's GET stream ends when its token expires", () => {
  let upstream: ScriptedUpstream;
  let as: TestAuthServer;
  const gets: ServerResponse[] = [];
  before(async () => {
    as = await startAuthServer();
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        gets.push(res);
        return;
      }
      answerJson(seen, res);
    });
  });
  after(async () => {
    for (const r of gets) r.destroy();
    await upstream.close();
    await as.close();
  });

  it('ends at exp plus clock_tolerance, as a request would then be refused, with the reason on its line', async () => {
    const gateway = await startOAuthGateway(upstream.url, as.issuer, as.jwksUri, ['    clock_tolerance: 1s']);
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await as.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools', exp });
    const before = gets.length;
    const stream = await openRequest(gateway.mcpUrl, 'GET', {
      authorization: `Bearer ${token}`,
      accept: 'text/event-stream',
    });
    try {
      assert.equal(stream.status, 200);
      await waitFor(() => gets.length > before || undefined, 3000, 'the GET upstream');
      // Past exp, within the tolerance: the token is still good, and so is the stream.
      await waitFor(() => Date.now() > exp * 1000 + 100 || undefined, 4000, 'exp');
      assert.equal(stream.ended(), false, 'the stream lives while the token would still be accepted');
      await waitFor(() => stream.ended() || undefined, 3000, 'the stream ended at exp + tolerance');
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.http_method === 'GET' && l.sub !== undefined),
        3000,
        'the stream audit line',
      );
      assert.equal(line.reason, 'ERR_STREAM_EXPIRED');
      assert.equal(gateway.handler.streams.size, 0);
    } finally {
      stream.close();
      await gateway.close(200);
    }
  });
});

// -----------------------------------------------------------------------------------------------
// 2026-07-28 request headers on requests without a body
// -----------------------------------------------------------------------------------------------

describe('review10: Mcp-* routing headers where no body can vouch for them', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  const echo: KeySpec = { label: 'echo', key: newKey(), allow: ['echo'] };
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(': bye\n\n');
        return;
      }
      if (seen.method === 'DELETE') return void res.writeHead(200).end();
      if ((seen.body as { id?: unknown } | undefined)?.id === undefined) return void res.writeHead(202).end();
      answerJson(seen, res);
    });
    gateway = await startTestGateway(configFor(upstream.url, [echo]));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it('held: on a POST, Mcp-Name naming a denied tool beside an allowed body is refused before the upstream', async () => {
    const before = upstream.seen.length;
    const res = await postJson(
      gateway.mcpUrl,
      echo.key,
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"},${META}}}`,
      { 'mcp-method': 'tools/call', 'mcp-name': 'secret_admin', 'mcp-protocol-version': MODERN },
    );
    assert.equal(res.status, 400, res.text);
    assert.equal(upstream.seen.length, before);
  });

  for (const method of ['GET', 'DELETE'] as const) {
    it(`hole: a ${method} carrying Mcp-Method: tools/call, Mcp-Name: secret_admin and Mcp-Param-* reaches the upstream with them`, async () => {
      // failed before: checkMcpHeaders runs only in inspect (POST bodies); the header allowlist
      // (proxy/request-headers.ts) forwards Mcp-Method, Mcp-Name and every Mcp-Param-* on any method,
      // so a component behind the gateway that routes on them (what the headers are for) sees a
      // call of a tool the key may not use, and Mcp-Param-* "on anything but a single tools/call".
      const before = upstream.seen.length;
      const res = await openRequest(gateway.mcpUrl, method, {
        authorization: `Bearer ${echo.key}`,
        accept: 'text/event-stream',
        'mcp-protocol-version': MODERN,
        'mcp-method': 'tools/call',
        'mcp-name': 'secret_admin',
        'mcp-param-path': '/etc/shadow',
      });
      await waitFor(() => res.ended() || undefined, 3000, 'the answer').catch(() => {});
      res.close();
      const forwarded = upstream.seen.slice(before);
      const leaked = forwarded.filter(
        (s) =>
          s.headers['mcp-name'] !== undefined ||
          s.headers['mcp-method'] !== undefined ||
          s.headers['mcp-param-path'] !== undefined,
      );
      assert.deepEqual(
        leaked.map((s) => ({
          method: s.method,
          name: s.headers['mcp-name'],
          m: s.headers['mcp-method'],
          p: s.headers['mcp-param-path'],
        })),
        [],
        `the gateway answered ${res.status}`,
      );
      assert.equal(res.status, 400);
    });
  }
});

/**
 * Eleventh attack review (of the change that held subscriptions/listen like a GET stream, added
 * limits.send_timeout, ended streams at their credential's expiry and refused Mcp-* headers without
 * a body), through a real gateway in front of hand-scripted upstreams. `hole:` tests assert the
 * secure behaviour and fail on the code they were written against (each says what happens now);
 * `held:` tests are attacks that did not get through.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { waitFor } from '../helpers/net.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { ACCEPT, answerJson, bearer, openRequest, postJson } from '../helpers/open-request.ts';
import type { OpenStream } from '../helpers/open-request.ts';

const SECRET = 's'.repeat(40);
const MODERN = '2026-07-28';
const META = `"_meta":{"io.modelcontextprotocol/protocolVersion":"${MODERN}"}`;

const configFor = (upstreamUrl: string, keys: readonly KeySpec[], extra = '') =>
  reviewConfig(upstreamUrl, keys, extra, { secret: SECRET, resources: ['file:///public/*'] });

/** A ping with a deadline: its status, or 0 when it was not answered in time. */
async function pingWithin(url: string, key: string, ms: number, id = 77): Promise<number> {
  try {
    return (
      await postJson(url, key, `{"jsonrpc":"2.0","id":${id},"method":"ping"}`, {}, AbortSignal.timeout(ms))
    ).status;
  } catch {
    return 0;
  }
}

const listenBody = (id: number) =>
  `{"jsonrpc":"2.0","id":${id},"method":"subscriptions/listen","params":{${META},"notifications":{"resourceSubscriptions":["file:///public/a.txt"]}}}`;

const bigCall = (id: number) =>
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"big":true}}}`;

/**
 * The upstream of most tests: GET and subscriptions/listen (alone or in a batch) open a stream that
 * stays open; a tools/call with `big` streams ~24 MB of progress events; anything else is answered.
 */
function scriptFor(state: { listening: ServerResponse[]; bigSent: number }) {
  return (seen: Seen, res: ServerResponse): void => {
    res.on('error', () => {});
    const body = seen.body as
      { method?: string; id?: unknown; params?: { arguments?: { big?: boolean } } } | unknown[];
    const messages = Array.isArray(body) ? (body as { method?: string; id?: unknown }[]) : body ? [body] : [];
    if (seen.method === 'GET' || messages.some((m) => m.method === 'subscriptions/listen')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      state.listening.push(res);
      return;
    }
    const one = messages[0] as
      { method?: string; id?: unknown; params?: { arguments?: { big?: boolean } } } | undefined;
    if (one?.method === 'tools/call' && one.params?.arguments?.big) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      state.bigSent++;
      const chunk = `data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"message":"${'x'.repeat(60_000)}"}}\n\n`;
      let n = 0;
      const pump = () => {
        while (n < 400) {
          n++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end(`data: {"jsonrpc":"2.0","id":${JSON.stringify(one.id)},"result":{"content":[]}}\n\n`);
      };
      pump();
      return;
    }
    if (seen.method === 'DELETE') return void res.writeHead(200).end();
    if (seen.method !== 'POST') return void res.writeHead(405).end();
    if (one?.id === undefined) return void res.writeHead(202).end();
    answerJson(seen, res);
  };
}

function rawRequest(u: URL, method: string, key: string, body?: string, extra = ''): string {
  return (
    `${method} ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${key}\r\n` +
    `Accept: ${method === 'GET' ? 'text/event-stream' : ACCEPT}\r\n${extra}` +
    (body !== undefined
      ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
      : '') +
    `\r\n${body ?? ''}`
  );
}

// -----------------------------------------------------------------------------------------------
// send_timeout
// -----------------------------------------------------------------------------------------------

describe('review11: send_timeout', () => {
  let upstream: ScriptedUpstream;
  const state = { listening: [] as ServerResponse[], bigSent: 0 };
  const mallory: KeySpec = { label: 'mallory', key: newKey() };
  const alice: KeySpec = { label: 'alice', key: newKey() };
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set(scriptFor(state));
  });
  after(async () => {
    for (const r of state.listening) r.destroy();
    await upstream.close();
  });

  it("held: a big answer pipelined behind the client's own never-ending GET stream is still cut by send_timeout; another key is served", async () => {
    // Node queues the pipelined response behind the GET's (it has no socket yet), so its bytes pile
    // up unsent and the relay pauses the upstream; the stall timer still fires and the cut reaches
    // the upstream request: the connection comes back and the call has its line (ERR_CLIENT_STALLED).
    const gateway = await startTestGateway(
      configFor(upstream.url, [mallory, alice], '  connections: 1\nlimits:\n  send_timeout: 500ms\n'),
    );
    const u = new URL(gateway.mcpUrl);
    const socket: Socket = connect(Number(u.port), u.hostname);
    socket.on('error', () => {});
    socket.on('data', () => {}); // reads everything it is sent
    try {
      assert.equal(await pingWithin(gateway.mcpUrl, alice.key, 3000, 1), 200, 'control');
      const sent = state.bigSent;
      socket.write(rawRequest(u, 'GET', mallory.key) + rawRequest(u, 'POST', mallory.key, bigCall(2)));
      await waitFor(() => state.bigSent > sent || undefined, 3000, 'the big answer started upstream');
      const status = await pingWithin(gateway.mcpUrl, alice.key, 3000, 3);
      assert.equal(
        status,
        200,
        "alice's ping was not answered: mallory's pipelined call keeps the one connection",
      );
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.key === 'mallory' && l.http_method === 'POST'),
        3000,
        "the pipelined call's line",
      );
      assert.equal(line.reason, 'ERR_CLIENT_STALLED');
    } finally {
      socket.destroy();
      await gateway.close(200);
    }
  });

  it('held: a drip reader (two reads every 250 ms) of a big answer is still cut by send_timeout; the connection comes back', async () => {
    // 'drain' comes only once all the bytes Node holds reached the kernel, and a few MB sit in the
    // socket buffers: a reader slower than (socket buffers / send_timeout) is cut.
    const gateway = await startTestGateway(
      configFor(upstream.url, [mallory, alice], '  connections: 1\nlimits:\n  send_timeout: 1s\n'),
    );
    const u = new URL(gateway.mcpUrl);
    const socket: Socket = connect(Number(u.port), u.hostname);
    socket.on('error', () => {});
    let reads = 0;
    socket.on('data', () => {
      if (++reads % 2 === 0) socket.pause();
    });
    const drip = setInterval(() => socket.resume(), 250);
    try {
      const sent = state.bigSent;
      socket.write(rawRequest(u, 'POST', mallory.key, bigCall(2)));
      await waitFor(() => state.bigSent > sent || undefined, 3000, 'the big answer started upstream');
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.key === 'mallory'),
        6000,
        "mallory's line",
      );
      assert.equal(line.reason, 'ERR_CLIENT_STALLED');
      assert.equal(await pingWithin(gateway.mcpUrl, alice.key, 3000, 3), 200);
    } finally {
      clearInterval(drip);
      socket.destroy();
      await gateway.close(200);
    }
  });
});

// -----------------------------------------------------------------------------------------------
// subscriptions/listen that escapes the stream treatment
// -----------------------------------------------------------------------------------------------

describe('review11: a subscriptions/listen the gateway does not hold as a stream', () => {
  let upstream: ScriptedUpstream;
  const state = { listening: [] as ServerResponse[], bigSent: 0 };
  const mallory: KeySpec = { label: 'mallory', key: newKey(), maxStreams: 1 };
  const alice: KeySpec = { label: 'alice', key: newKey() };
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set(scriptFor(state));
  });
  after(async () => {
    for (const r of state.listening) r.destroy();
    await upstream.close();
  });

  it("hole: a subscriptions/listen inside a batch takes the capped request pool and no max_streams slot; another key's ping hangs (now: refused, -32600)", async () => {
    // failed before: isListen (src/pipeline/listen.ts) only knows a lone listen (`!ctx.batch`), so
    // `[{"method":"subscriptions/listen",...}]` is dispatched on upstream.pool like any POST: it
    // holds one of upstream.connections for as long as the client keeps it, takes no slot of
    // max_streams (a second one is not refused either), is not in handler.streams (a reload or
    // expiry never ends it).
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice], '  connections: 1\n'));
    const streams: OpenStream[] = [];
    try {
      assert.equal(await pingWithin(gateway.mcpUrl, alice.key, 3000, 1), 200, 'control');
      const before = state.listening.length;
      streams.push(
        await openRequest(
          gateway.mcpUrl,
          'POST',
          { ...bearer(mallory.key), 'content-type': 'application/json' },
          `[${listenBody(2)}]`,
        ),
      );
      // The revision that defines the method has no batches: refused, naming the request, unforwarded.
      assert.equal(streams[0]!.status, 400);
      await waitFor(() => streams[0]!.ended() || undefined, 3000, 'the answer');
      assert.deepEqual(JSON.parse(streams[0]!.text()), [
        {
          jsonrpc: '2.0',
          id: 2,
          error: { code: -32600, message: 'invalid request: subscriptions/listen cannot be sent in a batch' },
        },
      ]);
      assert.equal(state.listening.length, before, 'nothing reached the upstream');
      assert.equal(await pingWithin(gateway.mcpUrl, alice.key, 3000, 3), 200, 'alice is served');
    } finally {
      for (const s of streams) s.close();
      await gateway.close(200);
    }
  });
});

describe('review11: listen streams, their slots and their expiry', () => {
  let upstream: ScriptedUpstream;
  const state = { listening: [] as ServerResponse[], bigSent: 0 };
  /** Listens whose answer the upstream has not sent yet. */
  const waiting: ServerResponse[] = [];
  let holdHead = false;
  before(async () => {
    upstream = await startScriptedUpstream();
    const script = scriptFor(state);
    upstream.set((seen, res) => {
      if (holdHead && (seen.body as { method?: string } | undefined)?.method === 'subscriptions/listen') {
        res.on('error', () => {});
        waiting.push(res);
        return;
      }
      script(seen, res);
    });
  });
  after(async () => {
    for (const r of [...state.listening, ...waiting]) r.destroy();
    await upstream.close();
  });

  it('held: a listen whose method is spelled with JSON escapes is held as a stream all the same', async () => {
    const one: KeySpec = { label: 'one', key: newKey(), maxStreams: 1 };
    const gateway = await startTestGateway(configFor(upstream.url, [one]));
    const body = listenBody(1).replace('subscriptions/listen', 'subscriptions\\/\\u006cisten');
    const stream = await openRequest(
      gateway.mcpUrl,
      'POST',
      { ...bearer(one.key), 'content-type': 'application/json' },
      body,
    );
    try {
      assert.equal(stream.status, 200);
      assert.equal(gateway.handler.streams.size, 1);
      const second = await postJson(gateway.mcpUrl, one.key, listenBody(2));
      assert.equal(second.status, 429, second.text);
    } finally {
      stream.close();
      await gateway.close(200);
    }
  });

  it('held: a listen aborted before the upstream answered gives its max_streams slot back', async () => {
    const one: KeySpec = { label: 'one', key: newKey(), maxStreams: 1 };
    const gateway = await startTestGateway(configFor(upstream.url, [one]));
    holdHead = true;
    const before = waiting.length;
    const ac = new AbortController();
    const first = postJson(gateway.mcpUrl, one.key, listenBody(1), {}, ac.signal).catch(() => undefined);
    try {
      await waitFor(() => waiting.length > before || undefined, 3000, 'the listen upstream');
      assert.equal(gateway.handler.streams.size, 1);
      ac.abort();
      await first;
      await waitFor(() => gateway.handler.streams.size === 0 || undefined, 3000, 'the slot back');
      holdHead = false;
      const again = await openRequest(
        gateway.mcpUrl,
        'POST',
        { ...bearer(one.key), 'content-type': 'application/json' },
        listenBody(2),
      );
      assert.equal(again.status, 200);
      again.close();
      const line = await waitFor(() => gateway.auditLines.find((l) => l.rpc_id === 1), 3000, 'line 1');
      assert.equal(line.aborted, true);
    } finally {
      holdHead = false;
      await gateway.close(200);
    }
  });

  it("hole: a listen whose key expires before it is forwarded gets 200 with an empty body and an 'allow' audit line", async () => {
    // failed before: holdStream (src/pipeline/handler.ts) starts the ExpiryWatch, which finds the key
    // expired at once and calls endStream: setOwnHeaders + res.end(), a bare `200 OK`,
    // Content-Length: 0, for a request of an expired key that never reached the upstream; the line
    // says decision "allow", status 200. A request made at that moment gets 401 (the same happens to a
    // GET whose OAuth verification or Redis prepay was awaited across the expiry).
    const expiresAt = Date.now() + 700;
    const temp: KeySpec = { label: 'temp', key: newKey(), expires: new Date(expiresAt).toISOString() };
    const gateway = await startTestGateway(configFor(upstream.url, [temp]));
    const u = new URL(gateway.mcpUrl);
    const socket = connect(Number(u.port), u.hostname);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => {});
    const seenBefore = upstream.seen.length;
    try {
      const req = rawRequest(u, 'POST', temp.key, listenBody(5));
      // Authenticated (and paid) while the key is good; the body's last bytes come after `expires`.
      socket.write(req.slice(0, req.length - 10));
      await waitFor(() => Date.now() > expiresAt + 100 || undefined, 3000, 'expiry');
      socket.write(req.slice(req.length - 10));
      const line = await waitFor(() => gateway.auditLines.find((l) => l.key === 'temp'), 3000, 'the line');
      assert.equal(upstream.seen.length, seenBefore, 'nothing reached the upstream');
      assert.deepEqual(
        { status: answer.slice(0, 12), allowed: line.decision === 'allow', lineStatus: line.status },
        { status: 'HTTP/1.1 401', allowed: false, lineStatus: 401 },
        `the answer: ${JSON.stringify(answer)}`,
      );
    } finally {
      socket.destroy();
      await gateway.close(200);
    }
  });

  it("held: a listen ended by its key's expiry gives back its slot, with one line saying ERR_STREAM_EXPIRED", async () => {
    const expiresAt = Date.now() + 800;
    const temp: KeySpec = {
      label: 'temp2',
      key: newKey(),
      expires: new Date(expiresAt).toISOString(),
      maxStreams: 1,
    };
    const gateway = await startTestGateway(configFor(upstream.url, [temp]));
    const stream = await openRequest(
      gateway.mcpUrl,
      'POST',
      { ...bearer(temp.key), 'content-type': 'application/json' },
      listenBody(6),
    );
    try {
      assert.equal(stream.status, 200);
      assert.equal(gateway.handler.streams.size, 1);
      await waitFor(() => stream.ended() || undefined, 4000, 'the stream ended at expiry');
      await waitFor(() => gateway.handler.streams.size === 0 || undefined, 3000, 'the slot back');
      await new Promise((r) => setTimeout(r, 100));
      const lines = gateway.auditLines.filter((l) => l.key === 'temp2');
      assert.equal(lines.length, 1);
      assert.equal(lines[0]!.reason, 'ERR_STREAM_EXPIRED');
    } finally {
      stream.close();
      await gateway.close(200);
    }
  });
});

describe('review11: a reload racing a stream that is not open yet', () => {
  let upstream: ScriptedUpstream;
  const state = { listening: [] as ServerResponse[], bigSent: 0 };
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set(scriptFor(state));
  });
  after(async () => {
    for (const r of state.listening) r.destroy();
    await upstream.close();
  });

  it('hole: a listen whose body is finished after a reload removed its key is forwarded and stays open, receiving notifications', async () => {
    // failed before: the request keeps the steps it started with (handler.ts run: `steps` read once);
    // the reload's endRefusedStreams walks only handler.streams, which the listen joins later
    // (holdStream, once its body is read and judged under the old grants). A client that holds back
    // the last bytes of its body until after the revocation gets a stream the new config refuses,
    // open for as long as it likes.
    const mallory: KeySpec = { label: 'mallory', key: newKey() };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
    const u = new URL(gateway.mcpUrl);
    const socket = connect(Number(u.port), u.hostname);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => {});
    try {
      const req = rawRequest(u, 'POST', mallory.key, listenBody(9));
      socket.write(req.slice(0, req.length - 10));
      await waitFor(() => gateway.handler.inflight.size > 0 || undefined, 3000, 'the request in flight');
      await new Promise((r) => setTimeout(r, 100));
      const outcome = parseConfigText(configFor(upstream.url, [alice]), {}, Date.now());
      assert.ok(outcome.config);
      assert.equal((await gateway.runtime.reload(outcome.config)).applied, true);
      // Control: mallory is refused now.
      assert.equal(
        (await postJson(gateway.mcpUrl, mallory.key, '{"jsonrpc":"2.0","id":1,"method":"ping"}')).status,
        401,
      );
      const before = state.listening.length;
      socket.write(req.slice(req.length - 10));
      await new Promise((r) => setTimeout(r, 500));
      const marker = 'after-revocation-' + randomBytes(4).toString('hex');
      const up = state.listening.length > before ? state.listening[state.listening.length - 1]! : undefined;
      if (up !== undefined && !up.destroyed)
        up.write(
          `data: {"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///public/a.txt","note":"${marker}"}}\n\n`,
        );
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(
        { open: gateway.handler.streams.size, notified: answer.includes(marker) },
        { open: 0, notified: false },
        `the removed key's listen: ${answer.slice(0, 200)}`,
      );
      // Refused as opened across the reload: the client opens it again and is judged anew.
      assert.match(answer, /^HTTP\/1\.1 503 [^]*retry-after: 1/i);
    } finally {
      socket.destroy();
      await gateway.close(200);
    }
  });
});

describe('review11: other long-lived POST answers and bodyless headers', () => {
  let upstream: ScriptedUpstream;
  const asking: ServerResponse[] = [];
  const mallory: KeySpec = { label: 'mallory', key: newKey() };
  const alice: KeySpec = { label: 'alice', key: newKey() };
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      res.on('error', () => {});
      const body = seen.body as
        { method?: string; id?: unknown; params?: { arguments?: { ask?: boolean } } } | undefined;
      if (body?.method === 'tools/call' && body.params?.arguments?.ask) {
        // The tool asks the client a question on its answer stream and waits for the reply.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          'data: {"jsonrpc":"2.0","id":"q1","method":"elicitation/create","params":{"message":"sure?","requestedSchema":{"type":"object","properties":{}}}}\n\n',
        );
        asking.push(res);
        return;
      }
      if (seen.method !== 'POST') return void res.writeHead(405).end();
      if (body?.id === undefined) return void res.writeHead(202).end();
      answerJson(seen, res);
    });
  });
  after(async () => {
    for (const r of asking) r.destroy();
    await upstream.close();
  });

  it("hole: a tools/call whose answer waits on the client's reply to elicitation/create holds an upstream connection for as long as the client likes; another key's ping hangs (now: max_in_flight)", async () => {
    // failed before: the answer became an SSE stream the client reads to the last byte (no stall, so
    // send_timeout never fires) and never answers the server's request; the call is a POST on the
    // capped upstream.pool with no max_streams slot and no deadline once its headers came, so one key
    // keeps upstream.connections busy and every other key's requests wait in undici's queue (the same
    // for a 2025-11-25 tasks/result, which blocks until the task, waiting on the client, ends).
    // Now: each key may have max_in_flight requests at the upstream, by default a quarter of
    // upstream.connections (2 of 8 here): mallory's third question-holding call gets 429 and
    // alice is served from the connections left.
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice], '  connections: 8\n'));
    const held: OpenStream[] = [];
    const ask = (id: number) =>
      openRequest(
        gateway.mcpUrl,
        'POST',
        { ...bearer(mallory.key), 'content-type': 'application/json' },
        `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"ask":true}}}`,
      );
    try {
      assert.equal(await pingWithin(gateway.mcpUrl, alice.key, 3000, 1), 200, 'control');
      for (const id of [2, 3]) {
        const stream = await ask(id);
        held.push(stream);
        assert.equal(stream.status, 200);
        await waitFor(() => stream.text().includes('elicitation/create') || undefined, 3000, 'the question');
      }
      const asked = asking.length;
      const third = await postJson(
        gateway.mcpUrl,
        mallory.key,
        '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"ask":true}}}',
      );
      assert.equal(third.status, 429, third.text);
      assert.match(third.text, /too many requests in flight for this key/);
      assert.equal(asking.length, asked, 'the refused call never reached the upstream');
      assert.equal(await pingWithin(gateway.mcpUrl, alice.key, 3000, 3), 200, "alice's ping is served");
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.reason === 'ERR_TOO_MANY_IN_FLIGHT'),
        3000,
        'the refusal line',
      );
      assert.equal(line.decision, 'rate_limited');
      assert.equal(line.key, 'mallory');
      // A held call that ends gives its slot back.
      held.shift()?.close();
      await waitFor(
        async () =>
          (await postJson(gateway.mcpUrl, mallory.key, '{"jsonrpc":"2.0","id":5,"method":"ping"}')).status ===
            200 || undefined,
        3000,
        'a slot back',
      );
    } finally {
      for (const s of held) s.close();
      await gateway.close(200);
    }
  });

  it('held: a GET or DELETE with an Mcp-Param header in odd case (or an empty Mcp-Method) is refused before the upstream', async () => {
    const gateway = await startTestGateway(configFor(upstream.url, [mallory]));
    try {
      for (const [method, name, value] of [
        ['GET', 'MCP-PARAM-Path', '/etc/shadow'],
        ['DELETE', 'mCp-PaRaM-x', '1'],
        ['GET', 'Mcp-Method', ''],
        ['GET', 'mcp-param-', 'x'],
      ] as const) {
        const before = upstream.seen.length;
        const res = await openRequest(gateway.mcpUrl, method, {
          authorization: `Bearer ${mallory.key}`,
          accept: 'text/event-stream',
          [name]: value,
        });
        res.close();
        assert.equal(res.status, 400, `${method} ${name}`);
        assert.equal(upstream.seen.length, before);
      }
    } finally {
      await gateway.close(200);
    }
  });
});

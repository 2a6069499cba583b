/**
 * The final attack review of the day's changes, read as one change: where the fixes meet (the held
 * body's pump and the end watch in src/proxy/relay.ts, a stream ended by the gateway in
 * src/pipeline/handler.ts and src/server/reload.ts, ...). "hole:" tests failed before their fix
 * ("failed before: ..."); "holds:" tests pin what already held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { waitFor } from '../helpers/net.ts';
import { rawClient, rawRequest } from '../helpers/raw-client.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { answerJson, bearer, openRequest } from '../helpers/open-request.ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { startEverything } from '../helpers/everything.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { Everything } from '../helpers/everything.ts';

const SECRET = 's'.repeat(40);
const MODERN = '2026-07-28';
const META = `"_meta":{"io.modelcontextprotocol/protocolVersion":"${MODERN}"}`;

const configFor = (upstreamUrl: string, keys: readonly KeySpec[], extra = '') =>
  reviewConfig(upstreamUrl, keys, extra, { secret: SECRET, resources: ['file:///public/*'] });

const listenBody = (id: number) =>
  `{"jsonrpc":"2.0","id":${id},"method":"subscriptions/listen","params":{${META},"notifications":{"resourceSubscriptions":["file:///public/a.txt"]}}}`;

async function reloadWith(gateway: TestGateway, yaml: string): Promise<void> {
  const outcome = parseConfigText(yaml, {}, Date.now());
  assert.ok(outcome.config, JSON.stringify(outcome.issues));
  assert.equal((await gateway.runtime.reload(outcome.config)).applied, true);
}

describe('final review: a stream the gateway ends while its client takes nothing', () => {
  let upstream: ScriptedUpstream;
  const open: ServerResponse[] = [];
  /** When the upstream's GET stream last wrote (it stops once the gateway paused it). */
  let lastWrite = 0;
  /** The GET stream ends after this many events (0: never). */
  let endAfter = 0;
  const BIG_JSON = 8 * 1024 * 1024;
  /** A call's answer: more than the loopback socket buffers take. */
  const CALL_JSON = 40 * 1024 * 1024;
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen: Seen, res: ServerResponse) => {
      res.on('error', () => {});
      const body = seen.body as { method?: string; id?: unknown } | undefined;
      if (seen.method === 'GET') {
        // An SSE stream that writes until its socket takes no more.
        open.push(res);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const event = `data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"${'x'.repeat(60_000)}"}}\n\n`;
        if (endAfter > 0) {
          for (let i = 0; i < endAfter; i++) res.write(event);
          return void res.end();
        }
        const pump = () => {
          lastWrite = Date.now();
          for (let i = 0; i < 2000; i++) if (!res.write(event)) return void res.once('drain', pump);
        };
        pump();
        return;
      }
      if (body?.method === 'subscriptions/listen') {
        // A listen answered at once with a large JSON answer (held whole, then pumped in slices).
        open.push(res);
        return answerJson(seen, res, { pad: 'y'.repeat(BIG_JSON) });
      }
      if (body?.id === undefined) return void res.writeHead(202).end();
      if (body.method === 'tools/call') return answerJson(seen, res, { pad: 'z'.repeat(CALL_JSON) });
      answerJson(seen, res);
    });
  });
  after(async () => {
    for (const r of open) r.destroy();
    await upstream.close();
  });

  it('hole: an SSE stream ended by a reload while its client read nothing was never cut: its slot and its audit line waited on the client forever', async () => {
    // failed before: the client stopped reading, so the relay paused the upstream and armed the
    // send_timeout timer; the reload's endStream then wrote the end (res.end()) and aborted the relay,
    // which cleared that timer, and nothing watched the ended response's unsent bytes (the end watch
    // is armed only when the upstream ends it). No 'close' came while the client kept the
    // connection: no audit line, the key's max_streams slot held, the stream still listed.
    const mallory: KeySpec = { label: 'mallory', key: newKey(), maxStreams: 1 };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const extra = 'limits:\n  send_timeout: 1500ms\n';
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice], extra));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u, { paused: true });
    try {
      lastWrite = Date.now();
      client.socket.write(rawRequest(u, 'GET', mallory.key));
      await waitFor(() => Date.now() - lastWrite > 400 || undefined, 5000, 'the upstream paused');
      assert.equal(gateway.handler.streams.size, 1);
      await reloadWith(gateway, configFor(upstream.url, [alice], extra));
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.key === 'mallory'),
        5000,
        "the ended stream's line",
      );
      assert.equal(line.aborted, true);
      assert.equal(line.reason, 'ERR_AUTH_UNKNOWN_KEY');
      assert.equal(gateway.handler.streams.size, 0);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });

  it('hole: a large JSON listen answer ended by a reload mid-pump was ended short of its Content-Length: the client waited for the rest, the line said every byte went out', async () => {
    // failed before: the relay had sent the head with the body's length and was writing it in 64 KiB
    // slices as the client took them (tail-pump.ts); endStream's res.end() ended the response there.
    // Node sent no more and kept the connection (a response whose length it does not check): the
    // client waited for bytes that never come (until the 65 s keep-alive timeout), the line said
    // status 200, not aborted, bytes_out the whole length.
    const mallory: KeySpec = { label: 'mallory2', key: newKey() };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const extra = 'limits:\n  send_timeout: 5s\n';
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice], extra));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u, { paused: true });
    try {
      client.socket.write(rawRequest(u, 'POST', mallory.key, listenBody(7)));
      await waitFor(() => open.length > 0 || undefined, 3000, 'the listen answered');
      await new Promise((r) => setTimeout(r, 300));
      await reloadWith(gateway, configFor(upstream.url, [alice], extra));
      // The client reads now: it gets a head with a length, part of the body, then the cut.
      client.socket.resume();
      await waitFor(() => client.closed() || undefined, 4000, 'the connection cut');
      const text = client.text();
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1]);
      const got = text.length - text.indexOf('\r\n\r\n') - 4;
      assert.ok(got < length, `${got} of ${length} bytes`);
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.key === 'mallory2'),
        3000,
        'the line',
      );
      assert.equal(line.aborted, true);
      assert.ok((line.bytes_out as number) < length, `bytes_out ${String(line.bytes_out)} of ${length}`);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });

  it('holds: a client that leaves mid-pump of a 40 MB JSON answer: one line, aborted, bytes_out what was written, no stall timer left', async () => {
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [alice], 'limits:\n  send_timeout: 5s\n'));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u, { paused: true });
    try {
      const call = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}';
      client.socket.write(rawRequest(u, 'POST', alice.key, call));
      client.socket.resume();
      await waitFor(() => client.text().length > 1_000_000 || undefined, 3000, 'a first MB');
      client.socket.pause();
      await new Promise((r) => setTimeout(r, 100));
      // The relay of the call, through its response (the exchange it carries).
      const ctx = [...gateway.handler.inflight][0]!;
      const exchange = Object.getOwnPropertySymbols(ctx.res)
        .map((s) => (ctx.res as unknown as Record<symbol, unknown>)[s])
        .find((v) => (v as { relay?: unknown } | undefined)?.relay !== undefined) as {
        relay: { watch?: { timer: unknown }; tail: unknown };
      };
      assert.notEqual(exchange.relay.tail, undefined, 'still pumping');
      assert.notEqual(exchange.relay.watch?.timer, undefined, 'waiting on a drain');
      client.socket.destroy();
      const line = await waitFor(() => gateway.auditLines.find((l) => l.rpc_id === 3), 3000, 'the line');
      assert.equal(line.aborted, true);
      const received = client.text().length - client.text().indexOf('\r\n\r\n') - 4;
      const out = line.bytes_out as number;
      assert.ok(out >= received && out < CALL_JSON, `bytes_out ${out}, received ${received}`);
      assert.equal(exchange.relay.watch?.timer, undefined);
      assert.equal(ctx.res.listenerCount('drain') <= 1, true);
      assert.equal(gateway.auditLines.filter((l) => l.rpc_id === 3).length, 1);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });

  it('hole: an SSE stream its upstream ended, whose key expired before its client took the last bytes, was never cut: the expiry cleared the end watch', async () => {
    // failed before: the upstream ended the stream with megabytes its client had not taken, so the
    // relay armed its end watch (send_timeout); the key's expiry then called endStream, whose
    // res.end() did nothing (ended already) and whose relay.abort() cleared the end watch's timer.
    // The client that read nothing kept the stream's slot and its audit line for as long as it kept
    // the connection.
    const expiresAt = Date.now() + 1200;
    const temp: KeySpec = { label: 'temp', key: newKey(), expires: new Date(expiresAt).toISOString() };
    const gateway = await startTestGateway(configFor(upstream.url, [temp], 'limits:\n  send_timeout: 2s\n'));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u, { paused: true });
    endAfter = 140; // about 8.4 MB
    try {
      client.socket.write(rawRequest(u, 'GET', temp.key));
      await waitFor(() => Date.now() > expiresAt + 200 || undefined, 3000, 'the expiry');
      assert.equal(gateway.auditLines.length, 0, 'not cut before its send_timeout');
      const line = await waitFor(() => gateway.auditLines.find((l) => l.key === 'temp'), 4000, 'the line');
      assert.equal(line.aborted, true);
      assert.equal(line.reason, 'ERR_STREAM_EXPIRED');
      assert.equal(gateway.handler.streams.size, 0);
    } finally {
      endAfter = 0;
      client.socket.destroy();
      await gateway.close(200);
    }
  });
});

/** What a real client does with server-everything, through the gateway: its results, in order. */
interface Flows {
  listTools(): Promise<{ tools: { name: string }[] }>;
  listResources(): Promise<{ resources: { uri: string }[] }>;
  readResource(uri: string): Promise<unknown>;
  call(name: string, args: Record<string, unknown>, onProgress?: (p: number) => void): Promise<unknown>;
  close(): Promise<void>;
}

async function runFlows(flows: Flows): Promise<void> {
  const tools = (await flows.listTools()).tools.map((t) => t.name);
  for (const name of ['echo', 'trigger-long-running-operation', 'trigger-sampling-request'])
    assert.ok(tools.includes(name), `${name} in ${tools.join(', ')}`);
  assert.ok(tools.includes('trigger-elicitation-request'), tools.join(', '));
  const progress: number[] = [];
  const long = await flows.call('trigger-long-running-operation', { duration: 0.4, steps: 2 }, (p) =>
    progress.push(p),
  );
  assert.match(JSON.stringify(long), /Long running operation completed/);
  assert.deepEqual(progress, [1, 2]);
  assert.match(
    JSON.stringify(await flows.call('trigger-sampling-request', { prompt: 'hi' })),
    /sampled-here/,
  );
  assert.match(JSON.stringify(await flows.call('trigger-elicitation-request', {})), /decline/);
  const big = 'ß'.repeat(60_000); // 120 KB of UTF-8: more than a 64 KiB slice
  const echoed = (await flows.call('echo', { message: big })) as { content: { text: string }[] };
  assert.equal(echoed.content[0]?.text, `Echo: ${big}`);
  const resources = (await flows.listResources()).resources;
  assert.ok(resources.length > 0);
  assert.match(JSON.stringify(await flows.readResource(resources[0]!.uri)), /contents/);
  await flows.close();
}

describe('final review: real clients against server-everything through the gateway', () => {
  let everything: Everything;
  let gateway: TestGateway;
  const alice: KeySpec = {
    label: 'alice',
    key: newKey(),
    allow: ['*'],
    resources: ['*'],
  };
  before(async () => {
    everything = await startEverything();
    gateway = await startTestGateway(configFor(everything.url, [alice]));
  });
  after(async () => {
    await gateway.close(300);
    await everything.close();
  });
  const headers = () => ({ authorization: `Bearer ${alice.key}` });
  const sampled = { role: 'assistant', content: { type: 'text', text: 'sampled-here' }, model: 'm' } as const;

  it('holds: the v1 SDK client lists, calls with progress, answers sampling and elicitation, echoes 120 KB, reads a resource: nothing refused', async () => {
    const client = new Client(
      { name: 'final-v1', version: '1' },
      { capabilities: { sampling: {}, elicitation: {} } },
    );
    client.setRequestHandler(CreateMessageRequestSchema, async () => sampled);
    client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'decline' as const }));
    const transport = new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
      requestInit: { headers: headers() },
    });
    await client.connect(transport);
    await runFlows({
      listTools: () => client.listTools(),
      listResources: () => client.listResources(),
      readResource: (uri) => client.readResource({ uri }),
      call: (name, args, onProgress) =>
        client.callTool({ name, arguments: args }, undefined, {
          ...(onProgress ? { onprogress: (p: { progress: number }) => onProgress(p.progress) } : {}),
        }),
      close: async () => {
        await transport.terminateSession();
        await client.close();
      },
    });
    const refused = gateway.auditLines.filter((l) => l.decision !== 'allow' && l.decision !== 'aborted');
    assert.deepEqual(refused, []);
  });

  it('holds: the 2.x client does the same: nothing refused', async () => {
    const client = new Client2(
      { name: 'final-v2', version: '1' },
      { capabilities: { sampling: {}, elicitation: {} }, versionNegotiation: { mode: 'auto' } },
    );
    client.setRequestHandler('sampling/createMessage', async () => sampled);
    client.setRequestHandler('elicitation/create', async () => ({ action: 'decline' as const }));
    await client.connect(new Transport2(new URL(gateway.mcpUrl), { requestInit: { headers: headers() } }));
    await runFlows({
      listTools: () => client.listTools(),
      listResources: () => client.listResources(),
      readResource: (uri) => client.readResource({ uri }),
      call: (name, args, onProgress) =>
        client.callTool(
          { name, arguments: args },
          onProgress ? { onprogress: (p: { progress: number }) => onProgress(p.progress) } : undefined,
        ),
      close: () => client.close(),
    });
    const refused = gateway.auditLines.filter((l) => l.decision !== 'allow' && l.decision !== 'aborted');
    assert.deepEqual(refused, []);
  });
});

describe('final review: a JSON-answering SDK upstream, large answers pumped in slices', () => {
  it('holds: the v1 SDK client gets a 400 KB echo and a list of 2,000 tools (both over 64 KiB, JSON) whole; the lines count every byte', async () => {
    const upstream = await startSdkUpstream({ jsonResponse: true, extraTools: 2000 });
    const alice: KeySpec = { label: 'alice', key: newKey(), allow: ['echo', 'tool_1*'] };
    const gateway = await startTestGateway(configFor(upstream.url, [alice], 'limits:\n  send_timeout: 2s\n'));
    try {
      const client = new Client({ name: 'final-json', version: '1' });
      const transport = new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
      });
      await client.connect(transport);
      const names = (await client.listTools()).tools.map((t) => t.name);
      // The list is filtered: echo and tool_1000..tool_1999 (and tool_1, tool_10.., tool_100..).
      assert.ok(names.includes('echo') && names.includes('tool_1999') && !names.includes('tool_0999'));
      assert.ok(
        names.every((n) => n === 'echo' || n.startsWith('tool_1')),
        names.join(','),
      );
      const big = 'ü'.repeat(200_000);
      const echoed = (await client.callTool({ name: 'echo', arguments: { message: big } })) as {
        content: { text: string }[];
      };
      assert.ok(echoed.content[0]?.text.includes(big));
      await client.close();
      const lines = gateway.auditLines.filter((l) => l.rpc_method === 'tools/call');
      assert.equal(lines.length, 1);
      assert.ok((lines[0]!.bytes_out as number) > 400_000, String(lines[0]!.bytes_out));
      assert.equal(lines[0]!.aborted, false);
    } finally {
      await gateway.close(300);
      await upstream.close();
    }
  });
});

describe('final review: a listen stream the gateway ends before it carried an event', () => {
  let upstream: ScriptedUpstream;
  const open: ServerResponse[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((_seen, res) => {
      // The stream opens (its head only) and carries nothing yet.
      open.push(res);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
    });
  });
  after(async () => {
    for (const r of open) r.destroy();
    await upstream.close();
  });

  it("hole: a listen whose stream had opened but carried no event, ended at its key's expiry, ended bare: 200, an empty stream, no answer to the listen", async () => {
    // failed before: endStream answers a stream not yet answered with its refusal (401), but a
    // stream whose upstream had sent its head (headersSent) was just ended: the client read an empty
    // event stream and its listen (id 6) never got an answer, while the same stream ended by its
    // upstream gets an error for it (match.ts #owed). The gateway's end now goes through the
    // stream's rewriter, and the owed answer carries the refusal.
    const expiresAt = Date.now() + 800;
    const temp: KeySpec = { label: 'temp', key: newKey(), expires: new Date(expiresAt).toISOString() };
    const gateway = await startTestGateway(configFor(upstream.url, [temp]));
    const stream = await openRequest(
      gateway.mcpUrl,
      'POST',
      { ...bearer(temp.key), 'content-type': 'application/json' },
      listenBody(6),
    );
    try {
      assert.equal(stream.status, 200);
      await waitFor(() => stream.ended() || undefined, 4000, 'the stream ended at expiry');
      const data = /^data: (.*)$/m.exec(stream.text())?.[1];
      assert.ok(data !== undefined, `the stream: ${JSON.stringify(stream.text())}`);
      assert.deepEqual(JSON.parse(data), {
        jsonrpc: '2.0',
        id: 6,
        error: { code: -32001, message: 'unauthorized' },
      });
      const line = await waitFor(() => gateway.auditLines.find((l) => l.key === 'temp'), 3000, 'the line');
      assert.equal(line.reason, 'ERR_STREAM_EXPIRED');
      assert.notEqual(line.decision, 'upstream_error');
    } finally {
      stream.close();
      await gateway.close(200);
    }
  });
});

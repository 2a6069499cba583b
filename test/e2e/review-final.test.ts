/**
 * The final attack review of the day's changes, read as one change: where the fixes meet (the held
 * body's pump and the end watch in src/proxy/relay.ts, a stream ended by the gateway in
 * src/pipeline/handler.ts and src/server/reload.ts, ...). "hole:" tests failed before their fix
 * ("failed before: ..."); "holds:" tests pin what already held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { waitFor } from '../helpers/net.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { ACCEPT, answerJson } from '../helpers/open-request.ts';

const SECRET = 's'.repeat(40);
const MODERN = '2026-07-28';
const META = `"_meta":{"io.modelcontextprotocol/protocolVersion":"${MODERN}"}`;

const configFor = (upstreamUrl: string, keys: readonly KeySpec[], extra = '') =>
  reviewConfig(upstreamUrl, keys, extra, { secret: SECRET, resources: ['file:///public/*'] });

const listenBody = (id: number) =>
  `{"jsonrpc":"2.0","id":${id},"method":"subscriptions/listen","params":{${META},"notifications":{"resourceSubscriptions":["file:///public/a.txt"]}}}`;

function rawRequest(u: URL, method: string, key: string, body?: string): string {
  return (
    `${method} ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${key}\r\n` +
    `Accept: ${method === 'GET' ? 'text/event-stream' : ACCEPT}\r\n` +
    (body !== undefined
      ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
      : '') +
    `\r\n${body ?? ''}`
  );
}

/** A raw client socket that reads nothing until told (its bytes are kept as they come). */
function pausedClient(u: URL): { socket: Socket; text(): string; closed(): boolean } {
  const socket = connect(Number(u.port), u.hostname);
  let text = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  socket.pause();
  return { socket, text: () => text, closed: () => closed };
}

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
    const client = pausedClient(u);
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
    // slices as the client took them (pumpTail); endStream's res.end() ended the response there.
    // Node sent no more and kept the connection (a response whose length it does not check): the
    // client waited for bytes that never come (until the 65 s keep-alive timeout), the line said
    // status 200, not aborted, bytes_out the whole length.
    const mallory: KeySpec = { label: 'mallory2', key: newKey() };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const extra = 'limits:\n  send_timeout: 5s\n';
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice], extra));
    const u = new URL(gateway.mcpUrl);
    const client = pausedClient(u);
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
    const client = pausedClient(u);
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

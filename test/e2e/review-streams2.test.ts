/**
 * A second attack review of how responses end (src/proxy/relay.ts: end, pumpTail, watchEnd, settle;
 * src/pipeline/handler.ts endStream/expire; src/server/reload.ts): every way a response ends crossed
 * with the state it is in. "hole:" tests failed before their fix ("failed before: ..."); "holds:"
 * tests pin what already held.
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
import { postJson } from '../helpers/open-request.ts';
import { Pool } from 'undici';

const SECRET = 's'.repeat(40);

const configFor = (upstreamUrl: string, keys: readonly KeySpec[], extra = '') =>
  reviewConfig(upstreamUrl, keys, extra, { secret: SECRET, resources: ['file:///public/*'] });

/** The body of a raw response with a Content-Length: its declared length and the bytes received. */
function bodyOf(text: string): { length: number; got: number } {
  const length = Number(/content-length: (\d+)/i.exec(text)?.[1]);
  return { length, got: text.length - text.indexOf('\r\n\r\n') - 4 };
}

async function reloadWith(gateway: TestGateway, yaml: string): Promise<void> {
  const outcome = parseConfigText(yaml, {}, Date.now());
  assert.ok(outcome.config, JSON.stringify(outcome.issues));
  assert.equal((await gateway.runtime.reload(outcome.config)).applied, true);
}

describe('streams2 review: a response the gateway ends in each state', () => {
  let upstream: ScriptedUpstream;
  const open: ServerResponse[] = [];
  let breaking = false;
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen: Seen, res: ServerResponse) => {
      res.on('error', () => {});
      open.push(res);
      if (seen.method === 'GET') {
        // An error whose body the gateway cannot read (not JSON): it sends its own in its place.
        // The upstream sends the head and the first bytes, then nothing more.
        res.writeHead(503, { 'content-type': 'text/html', 'content-length': '1000' });
        res.write('<html>');
        // A broken upstream drops the connection before the rest (when told).
        if (breaking) setTimeout(() => res.socket?.destroy(), 100);
        return;
      }
      // A call's JSON answer: the head and its first bytes, then the rest later (never, here).
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"jsonrpc":"2.0",');
    });
  });
  after(async () => {
    for (const r of open) r.destroy();
    await upstream.close();
  });

  it("hole: a stream whose unreadable error body was replaced, ended by a reload before the upstream's body ended, was sent short of its Content-Length: the client waited on a connection that carried nothing", async () => {
    // failed before: the relay wrote the head of the gateway's own body in place of the upstream's
    // (its Content-Length) and waited for the upstream's end to send it; the reload's endStream
    // called relay.end, whose res.end() sent that head with no body. Node kept the connection open
    // (it does not check the length), so the client waited for bytes that never came, and the line
    // said the answer went out whole (not aborted).
    const mallory: KeySpec = { label: 'mallory', key: newKey() };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u);
    try {
      client.socket.write(rawRequest(u, 'GET', mallory.key));
      await waitFor(() => gateway.handler.streams.size === 1 || undefined, 3000, 'the stream open');
      await waitFor(() => upstream.seen.some((s) => s.method === 'GET') || undefined, 3000, 'the GET');
      await new Promise((r) => setTimeout(r, 200));
      await reloadWith(gateway, configFor(upstream.url, [alice]));
      await waitFor(() => client.text().includes('\r\n\r\n') || undefined, 3000, 'the head');
      // The client gets every byte its head promised, or sees the connection cut.
      await waitFor(
        () => {
          const { length, got } = bodyOf(client.text());
          return got >= length || client.closed() || undefined;
        },
        3000,
        `the body or the cut: ${JSON.stringify(client.text())}`,
      );
      assert.match(client.text(), /^HTTP\/1\.1 503 /);
      const { length, got } = bodyOf(client.text());
      const line = await waitFor(() => gateway.auditLines.find((l) => l.key === 'mallory'), 3000, 'the line');
      assert.equal(line.reason, 'ERR_AUTH_UNKNOWN_KEY');
      assert.equal(line.status, 503);
      if (got >= length) {
        assert.equal(got, length);
        assert.match(client.text(), /"error":\{"code":-32\d+/);
        assert.equal(line.bytes_out, length);
      } else assert.equal(line.aborted, true);
      assert.equal(gateway.handler.streams.size, 0);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });
  it("hole: a stream whose unreadable error body the gateway replaces, its upstream failing before that body's end, was cut before its head: no answer at all", async () => {
    // failed before: the head of the gateway's own body was written (not yet sent) when the upstream
    // answered; the upstream's connection then failed mid-body, and onDone's sendError found the
    // head "sent" and destroyed the response. The client, whose answer (the status and the gateway's
    // own error) needed nothing of the dropped body, got an empty reply instead of a JSON-RPC error.
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [alice]));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u);
    try {
      breaking = true;
      client.socket.write(rawRequest(u, 'GET', alice.key));
      await waitFor(
        () => {
          const { length, got } = bodyOf(client.text());
          return (client.text().includes('\r\n\r\n') && got >= length) || client.closed() || undefined;
        },
        3000,
        'the answer or the cut',
      );
      assert.match(client.text(), /^HTTP\/1\.1 503 /, `got ${JSON.stringify(client.text())}`);
      const { length, got } = bodyOf(client.text());
      assert.equal(got, length);
      assert.match(client.text(), /"error":\{"code":-32\d+/);
      const line = await waitFor(() => gateway.auditLines.find((l) => l.key === 'alice'), 3000, 'the line');
      assert.equal(line.status, 503);
      assert.equal(line.decision, 'upstream_error');
      assert.equal(line.bytes_out, length);
      assert.equal(line.aborted, false);
    } finally {
      breaking = false;
      client.socket.destroy();
      await gateway.close(200);
    }
  });
  it('hole: a client that left while the gateway held its JSON answer (its head not sent) was recorded as having received a 200', async () => {
    // failed before: the exchange took the upstream's status when its head arrived, though a body the
    // gateway must read is held whole and its head written only then. The client left with nothing
    // received, and its line said status 200 (aborted), where README's fields say 499 for a client
    // that left before a response, and the status is otherwise always the one the client received.
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [alice]));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u);
    try {
      const call = '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{}}}';
      client.socket.write(rawRequest(u, 'POST', alice.key, call));
      await waitFor(() => upstream.seen.some((s) => s.method === 'POST') || undefined, 3000, 'the call');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(client.text(), '');
      client.socket.destroy();
      const line = await waitFor(() => gateway.auditLines.find((l) => l.key === 'alice'), 3000, 'the line');
      assert.equal(line.aborted, true);
      assert.equal(line.status, 499);
      assert.equal(line.bytes_out, 0);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });
});

describe('streams2 review: a stream the gateway refuses before its upstream request started', () => {
  let upstream: ScriptedUpstream;
  const open: ServerResponse[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen: Seen, res: ServerResponse) => {
      res.on('error', () => {});
      open.push(res);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
    });
  });
  after(async () => {
    for (const r of open) r.destroy();
    await upstream.close();
  });

  it('holds: a stream refused by a reload while its upstream connection was still being made is not forwarded once it is made', async () => {
    // The relay learns its upstream request's controller only when the request is written to a
    // connection (onRequestStart), after a new stream connection's connect (and TLS handshake):
    // relay.abort finds none to abort. onRequestStart aborts a request whose response is over.
    const mallory: KeySpec = { label: 'mallory', key: newKey() };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
    const u = new URL(gateway.mcpUrl);
    // A slow connection to the upstream (a far upstream's connect and TLS handshake), for GETs.
    const dispatch = Pool.prototype.dispatch;
    Pool.prototype.dispatch = function (this: Pool, options, handler) {
      if (options.method !== 'GET') return dispatch.call(this, options, handler);
      setTimeout(() => dispatch.call(this, options, handler), 600);
      return true;
    };
    const client = rawClient(u);
    try {
      client.socket.write(rawRequest(u, 'GET', mallory.key));
      await waitFor(() => gateway.handler.streams.size === 1 || undefined, 3000, 'the stream open');
      await reloadWith(gateway, configFor(upstream.url, [alice]));
      await waitFor(() => /^HTTP\/1\.1 401 /.test(client.text()) || undefined, 3000, 'the 401');
      const line = await waitFor(() => gateway.auditLines.find((l) => l.key === 'mallory'), 3000, 'the line');
      assert.equal(line.status, 401);
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(
        upstream.seen.filter((s) => s.method === 'GET').map((s) => s.method),
        [],
        'the refused stream never reaches the upstream',
      );
      assert.equal(gateway.auditLines.filter((l) => l.key === 'mallory').length, 1);
    } finally {
      Pool.prototype.dispatch = dispatch;
      client.socket.destroy();
      await gateway.close(200);
    }
  });

  it('hole: a stream pipelined behind an open answer, refused by a reload while its upstream connection was being made, was forwarded all the same', async () => {
    // failed before: relay.abort found no controller (the request not yet on a connection), and
    // onRequestStart aborted only a request whose response was destroyed (its client gone). A
    // refusal written behind another answer on the same connection waits in the response's queue:
    // not destroyed, so the upstream received the GET of the key the reload had refused (a key
    // whose expiry fell in that window too), and held a stream for it nobody would read.
    const mallory: KeySpec = { label: 'mallory', key: newKey() };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
    const u = new URL(gateway.mcpUrl);
    const dispatch = Pool.prototype.dispatch;
    Pool.prototype.dispatch = function (this: Pool, options, handler) {
      if (options.method !== 'GET') return dispatch.call(this, options, handler);
      setTimeout(() => dispatch.call(this, options, handler), 600);
      return true;
    };
    const client = rawClient(u);
    const seen = upstream.seen.length;
    // A call answered on an event stream that stays open, and a GET pipelined behind it.
    const call = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}';
    try {
      client.socket.write(rawRequest(u, 'POST', mallory.key, call) + rawRequest(u, 'GET', mallory.key));
      await waitFor(() => gateway.handler.streams.size === 1 || undefined, 3000, 'the stream open');
      await reloadWith(gateway, configFor(upstream.url, [alice]));
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(
        upstream.seen.slice(seen).map((s) => s.method),
        ['POST'],
        'the refused stream never reaches the upstream',
      );
      client.socket.destroy();
      const lines = await waitFor(
        () => (gateway.auditLines.length === 2 ? gateway.auditLines : undefined),
        3000,
        'the two lines',
      );
      const get = lines.find((l) => l.http_method === 'GET')!;
      assert.equal(get.status, 401);
      assert.equal(get.reason, 'ERR_AUTH_UNKNOWN_KEY');
    } finally {
      Pool.prototype.dispatch = dispatch;
      client.socket.destroy();
      await gateway.close(200);
    }
  });
});

describe('streams2 review: a large answer sent as its client takes it', () => {
  let upstream: ScriptedUpstream;
  const open: ServerResponse[] = [];
  /** A call's JSON answer: more than the loopback socket buffers take. */
  const CALL_JSON = 12 * 1024 * 1024;
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen: Seen, res: ServerResponse) => {
      res.on('error', () => {});
      open.push(res);
      const body = seen.body as { id?: unknown };
      const text = JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { pad: 'z'.repeat(CALL_JSON) } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(text.length) });
      res.end(text);
    });
  });
  after(async () => {
    for (const r of open) r.destroy();
    await upstream.close();
  });

  it('hole: a 12 MB answer pumped to a client that reads it slowly kept its 12 MB in memory outside the buffer budget, which said it was free', async () => {
    // failed before: the held body's reservation was given back when the upstream's answer ended
    // (finish), before the tail pump sent it: the answer's bytes stayed in memory until the client took
    // the last slice (a client taking 64 KiB per send_timeout keeps a 12 MB answer for hours), while
    // limits.max_buffered_bytes counted none of them. One key's max_in_flight slow answers could hold
    // that many bodies past the ceiling. The reservation now lasts until the pump ends or is cut.
    const slow: KeySpec = { label: 'slow', key: newKey() };
    const gateway = await startTestGateway(
      configFor(upstream.url, [slow], 'limits:\n  send_timeout: 5s\n  max_buffered_bytes: 64MiB\n'),
    );
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u);
    client.socket.pause();
    try {
      const call = '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{}}}';
      client.socket.write(rawRequest(u, 'POST', slow.key, call));
      await waitFor(() => upstream.seen.length > 0 || undefined, 3000, 'the call');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(gateway.auditLines.length, 0, 'still sending');
      assert.ok(
        gateway.budget.used >= CALL_JSON,
        `budget used ${gateway.budget.used} while the answer is held`,
      );
      // The client reads it all: the answer whole, its reservation given back.
      client.socket.resume();
      const line = await waitFor(() => gateway.auditLines[0], 5000, 'the line');
      assert.equal(line.aborted, false);
      assert.ok((line.bytes_out as number) > CALL_JSON);
      assert.equal(gateway.budget.used, 0);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });

  it('holds: a client that leaves mid-pump gives the reservation back', async () => {
    const slow: KeySpec = { label: 'slow', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [slow], 'limits:\n  send_timeout: 5s\n'));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u);
    client.socket.pause();
    const seen = upstream.seen.length;
    try {
      const call = '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{}}}';
      client.socket.write(rawRequest(u, 'POST', slow.key, call));
      await waitFor(() => upstream.seen.length > seen || undefined, 3000, 'the call');
      await new Promise((r) => setTimeout(r, 500));
      client.socket.destroy();
      const line = await waitFor(() => gateway.auditLines[0], 3000, 'the line');
      assert.equal(line.aborted, true);
      assert.equal(gateway.budget.used, 0);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });
  it('holds: a pump cut by send_timeout gives back its max_in_flight slot and its reservation: the next call is admitted', async () => {
    const one: KeySpec = { label: 'one', key: newKey() };
    const yaml = configFor(upstream.url, [one], 'limits:\n  send_timeout: 1s\n').replace(
      'refill_per_second: 1000',
      'refill_per_second: 1000, max_in_flight: 1',
    );
    const gateway = await startTestGateway(yaml);
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u);
    client.socket.pause();
    try {
      const call = (id: number) =>
        `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{}}}`;
      client.socket.write(rawRequest(u, 'POST', one.key, call(7)));
      await waitFor(() => gateway.budget.used > CALL_JSON || undefined, 3000, 'the pump');
      // While it is pumped the slot is taken.
      assert.equal((await postJson(gateway.mcpUrl, one.key, call(9))).status, 429);
      const line = await waitFor(() => gateway.auditLines.find((l) => l.rpc_id === 7), 5000, 'the cut');
      assert.equal(line.reason, 'ERR_CLIENT_STALLED');
      assert.equal(line.aborted, true);
      assert.equal(gateway.budget.used, 0);
      const next = await postJson(gateway.mcpUrl, one.key, call(8));
      assert.equal(next.status, 200);
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });
  it('hole: a large listen answer cut mid-pump at shutdown was recorded as its client leaving: aborted, no reason', async () => {
    // failed before: endStreams ends every stream with ERR_SHUTTING_DOWN but sets no reason (a stream
    // it ends cleanly was allowed and delivered whole); a listen whose JSON answer was being pumped
    // is cut instead (relay.end), and its line said allow, 200, aborted, no reason: what a client
    // that leaves gets. A reload's and an expiry's cuts name theirs; the grace period's too.
    const slow: KeySpec = { label: 'slow', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [slow], 'limits:\n  send_timeout: 5s\n'));
    const u = new URL(gateway.mcpUrl);
    const client = rawClient(u);
    client.socket.pause();
    const meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}';
    const listen = `{"jsonrpc":"2.0","id":11,"method":"subscriptions/listen","params":{${meta},"notifications":{"resourceSubscriptions":["file:///public/a.txt"]}}}`;
    try {
      client.socket.write(rawRequest(u, 'POST', slow.key, listen));
      // Held whole, then its head written and its slices pumped.
      await waitFor(
        () => [...gateway.handler.streams.keys()][0]?.res.headersSent || undefined,
        3000,
        'the pump',
      );
      await gateway.close(1000);
      const line = await waitFor(() => gateway.auditLines.find((l) => l.rpc_id === 11), 3000, 'the line');
      assert.equal(line.aborted, true);
      assert.equal(line.reason, 'ERR_SHUTTING_DOWN');
    } finally {
      client.socket.destroy();
      await gateway.close(200);
    }
  });
});

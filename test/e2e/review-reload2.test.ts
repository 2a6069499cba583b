/**
 * Attack review of config reload (SIGHUP, src/server/reload.ts) under live traffic, through a real
 * gateway in front of a hand-scripted upstream. `hole:` tests assert the secure behaviour and say
 * what happened before their fix ("failed before: ..."); `holds:` tests are attacks that did not
 * get through.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { waitFor } from '../helpers/net.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { ACCEPT, answerJson, postJson } from '../helpers/open-request.ts';

const SECRET = 'r'.repeat(40);

const configFor = (upstreamUrl: string, keys: readonly KeySpec[], extra = '') =>
  reviewConfig(upstreamUrl, keys, extra, { secret: SECRET, resources: ['file:///public/*'] });

async function reload(gateway: TestGateway, yaml: string): Promise<void> {
  const outcome = parseConfigText(yaml, {}, Date.now());
  assert.ok(outcome.config, outcome.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  assert.equal((await gateway.runtime.reload(outcome.config)).applied, true);
}

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

const callOf = (seen: Seen) =>
  (seen.body as { method?: string; params?: { name?: string } } | undefined) ?? {};

describe('review-reload2: a request whose body arrives across a reload', () => {
  let upstream: ScriptedUpstream;
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res: ServerResponse) => {
      res.on('error', () => {});
      if (seen.method !== 'POST') return void res.writeHead(405).end();
      answerJson(seen, res, { content: [{ type: 'text', text: 'ran' }] });
    });
  });
  after(async () => {
    await upstream.close();
  });

  for (const [what, next] of [
    ['its key removed', (_m: KeySpec, a: KeySpec) => [a]],
    ['its tool taken from its allowlist', (m: KeySpec, a: KeySpec) => [{ ...m, allow: ['other'] }, a]],
  ] as const) {
    it(`hole: a tools/call whose last body bytes come after a reload (${what}) reached the upstream`, async () => {
      // failed before: the request keeps the steps read when its headers came (handler.ts run), and
      // was judged by them once its body was read, however long after the reload: the client held
      // back its last bytes (up to the listener's requestTimeout) and its call ran under a key the
      // running config had removed or narrowed.
      const mallory: KeySpec = { label: 'mallory', key: newKey(), allow: ['echo'] };
      const alice: KeySpec = { label: 'alice', key: newKey() };
      const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
      const u = new URL(gateway.mcpUrl);
      const socket = connect(Number(u.port), u.hostname);
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      socket.on('error', () => {});
      try {
        const body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}';
        const req = rawRequest(u, 'POST', mallory.key, body);
        socket.write(req.slice(0, req.length - 5));
        await waitFor(() => gateway.handler.inflight.size > 0 || undefined, 3000, 'the request in flight');
        await new Promise((r) => setTimeout(r, 100));
        await reload(gateway, configFor(upstream.url, next(mallory, alice)));
        const before = upstream.seen.length;
        socket.write(req.slice(req.length - 5));
        await waitFor(() => /\r\n\r\n/.test(answer) || undefined, 3000, 'the answer');
        await new Promise((r) => setTimeout(r, 100));
        const calls = upstream.seen.slice(before).filter((s) => callOf(s).method === 'tools/call');
        assert.equal(calls.length, 0, `the call reached the upstream: ${answer.slice(0, 300)}`);
        assert.match(answer, /^HTTP\/1\.1 503 [^]*retry-after: 1[^]*"id":7,"error":\{"code":-32603,/i);
        const lines = await waitFor(
          () => (gateway.auditLines.length > 0 ? gateway.auditLines : undefined),
          3000,
          'its line',
        );
        assert.equal(lines.length, 1);
        assert.equal(lines[0]!.reason, 'ERR_CONFIG_RELOADED');
        assert.equal(lines[0]!.status, 503);
      } finally {
        socket.destroy();
        await gateway.close(200);
      }
    });
  }
});

describe('review-reload2: a POST answer streaming across a reload', () => {
  let upstream: ScriptedUpstream;
  const calls: ServerResponse[] = [];
  const held: (() => void)[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res: ServerResponse) => {
      res.on('error', () => {});
      if (seen.method !== 'POST') return void res.writeHead(405).end();
      const body = seen.body as { method?: string; id?: unknown } | undefined;
      if (body?.method === 'tools/call') {
        // A long tool: its answer is an SSE stream the test writes to.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': working\n\n');
        calls.push(res);
        return;
      }
      if (body?.method === 'tools/list') {
        // A slow list: answered when the test says.
        held.push(() =>
          answerJson(seen, res, { tools: [{ name: 'echo', inputSchema: { type: 'object' } }] }),
        );
        return;
      }
      if (body?.id === undefined) return void res.writeHead(202).end();
      answerJson(seen, res);
    });
  });
  after(async () => {
    for (const r of calls) r.destroy();
    await upstream.close();
  });

  const updated = (uri: string) =>
    `data: {"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"${uri}"}}\n\n`;

  for (const [what, next, rpc, reason] of [
    [
      'its resources narrowed',
      (m: KeySpec, a: KeySpec) => [{ ...m, resources: ['file:///public/ok/*'] }, a],
      -32603,
      'ERR_CONFIG_RELOADED',
    ],
    ['its key removed', (_m: KeySpec, a: KeySpec) => [a], -32001, 'ERR_AUTH_UNKNOWN_KEY'],
  ] as const) {
    it(`hole: a tools/call answer streaming when a reload changed its key (${what}) went on under the old grants`, async () => {
      // failed before: a reload ended the key's GET and listen streams only; a POST's SSE answer
      // kept the filters of the principal it started with, so after "config reloaded" the client
      // was still sent updates of resources the running config hides from it (and, its key removed,
      // whatever the upstream wrote, for as long as the call lasted).
      const mallory: KeySpec = { label: 'mallory', key: newKey() };
      const alice: KeySpec = { label: 'alice', key: newKey() };
      const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
      const u = new URL(gateway.mcpUrl);
      const socket = connect(Number(u.port), u.hostname);
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      socket.on('error', () => {});
      try {
        const before = calls.length;
        socket.write(
          rawRequest(
            u,
            'POST',
            mallory.key,
            '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}',
          ),
        );
        const up = await waitFor(() => calls[before], 3000, 'the call at the upstream');
        up.write(updated('file:///public/secret-before.txt'));
        await waitFor(() => answer.includes('secret-before') || undefined, 3000, 'the update before');
        await reload(gateway, configFor(upstream.url, next(mallory, alice)));
        if (!up.destroyed) up.write(updated('file:///public/secret-after.txt'));
        await new Promise((r) => setTimeout(r, 300));
        assert.ok(!answer.includes('secret-after'), `after the reload: ${answer.slice(-300)}`);
        // The call it owes an answer to gets the refusal on its stream (its key's now, or the
        // reload's for a changed key), and the stream ends.
        assert.ok(answer.includes(`"id":3,"error":{"code":${rpc},`), answer.slice(-200));
        const line = await waitFor(() => gateway.auditLines[0], 3000, 'its line');
        assert.equal(gateway.auditLines.length, 1);
        assert.equal(line.key, 'mallory');
        assert.equal(line.reason, reason);
      } finally {
        socket.destroy();
        await gateway.close(200);
      }
    });
  }

  it('hole: a tools/list the upstream answered after a reload took the tool from its key listed it', async () => {
    // failed before: the answer was filtered by the grants the key had when the request started.
    const mallory: KeySpec = { label: 'mallory', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [mallory]));
    try {
      const before = held.length;
      const pending = postJson(gateway.mcpUrl, mallory.key, '{"jsonrpc":"2.0","id":5,"method":"tools/list"}');
      await waitFor(() => held[before], 3000, 'the list at the upstream');
      await reload(gateway, configFor(upstream.url, [{ ...mallory, allow: ['other'] }]));
      held[before]!();
      const res = await pending;
      assert.ok(!res.text.includes('echo'), res.text);
      assert.equal(res.status, 503, res.text);
      const line = await waitFor(() => gateway.auditLines[0], 3000, 'its line');
      assert.equal(line.reason, 'ERR_CONFIG_RELOADED');
    } finally {
      await gateway.close(200);
    }
  });

  for (const [what, next] of [
    ['of an unchanged key', (a: KeySpec) => a],
    // Cutting it would lose the answer of a tool that has run, and invite the client to run it
    // again (failed before the reload told grants from limits: 503 ERR_CONFIG_RELOADED).
    [
      'of a key whose rate limit and label alone changed',
      (a: KeySpec) => ({ ...a, label: 'alice2', capacity: 7 }),
    ],
  ] as const) {
    it(`holds: a tools/call answer ${what} streams on across a reload`, async () => {
      const mallory: KeySpec = { label: 'mallory', key: newKey() };
      const alice: KeySpec = { label: 'alice', key: newKey() };
      const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
      const u = new URL(gateway.mcpUrl);
      const socket = connect(Number(u.port), u.hostname);
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      socket.on('error', () => {});
      try {
        const before = calls.length;
        socket.write(
          rawRequest(
            u,
            'POST',
            alice.key,
            '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{}}}',
          ),
        );
        const up = await waitFor(() => calls[before], 3000, 'the call at the upstream');
        await reload(gateway, configFor(upstream.url, [next(alice)]));
        up.write(updated('file:///public/still.txt'));
        up.end(
          'data: {"jsonrpc":"2.0","id":' +
            JSON.stringify((upstream.seen.at(-1)!.body as { id: unknown }).id) +
            ',"result":{"content":[]}}\n\n',
        );
        await waitFor(() => answer.includes('"id":4,"result"') || undefined, 3000, 'its answer');
        assert.ok(answer.includes('still.txt'));
        const line = await waitFor(() => gateway.auditLines[0], 3000, 'its line');
        assert.equal(line.reason, undefined);
        assert.equal(line.decision, 'allow');
      } finally {
        socket.destroy();
        await gateway.close(200);
      }
    });
  }
});

describe('review-reload2: a reload racing shutdown', () => {
  it('holds: a reload that removes the key of an open stream while the gateway shuts down ends it once, with one line', async () => {
    const upstream = await startScriptedUpstream();
    const open: ServerResponse[] = [];
    upstream.set((seen, res) => {
      res.on('error', () => {});
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        open.push(res);
        return;
      }
      answerJson(seen, res);
    });
    const mallory: KeySpec = { label: 'mallory', key: newKey() };
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [mallory, alice]));
    const u = new URL(gateway.mcpUrl);
    const socket = connect(Number(u.port), u.hostname);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => {});
    try {
      socket.write(rawRequest(u, 'GET', mallory.key));
      await waitFor(() => open[0], 3000, 'the stream at the upstream');
      await waitFor(() => answer.includes(': open') || undefined, 3000, 'the stream open');
      const next = parseConfigText(configFor(upstream.url, [alice]), {}, Date.now()).config!;
      const [closed, reloaded] = await Promise.all([gateway.close(300), gateway.runtime.reload(next)]);
      assert.equal(closed.forced, 0);
      assert.equal(reloaded.applied, true);
      assert.equal(gateway.handler.inflight.size, 0);
      const lines = gateway.auditLines.filter((l) => l.key === 'mallory');
      assert.equal(lines.length, 1, JSON.stringify(gateway.auditLines));
    } finally {
      socket.destroy();
      for (const r of open) r.destroy();
      await gateway.close(200);
      await upstream.close();
    }
  });
});

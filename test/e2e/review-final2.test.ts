/**
 * Review final2: attacks on this session's own changes (fb9d64a..c016b5c): request tags signed for
 * the upstream session, the fail-closed audit log, related-task judging, Node parser refusals, the
 * Redis deadline, the SSE rewriter's line ends and list entries holding a case variant.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/net.ts';
import { startServe } from '../helpers/cli.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INITIALIZE =
  '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}';
const INIT_RESULT = {
  protocolVersion: '2025-11-25',
  capabilities: {},
  serverInfo: { name: 'u', version: '1' },
};

describe('review final2: an initialize resumed on a GET stream (SEP-1699 priming event)', () => {
  let upstream: ScriptedUpstream;
  let gw: TestGateway;
  const alice = newKey();
  let sessions = 0;
  /** The tag of each initialize, by the session its answer opened. */
  const initTags = new Map<string, unknown>();
  /** Which session's initialize tag the next GET stream replays. */
  let replayOf = '';
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // A GET that resumes nothing (the SDK client's own stream): nothing to replay on it.
        if (seen.headers['last-event-id'] === undefined) return void res.end();
        const answer = { jsonrpc: '2.0', id: initTags.get(replayOf), result: INIT_RESULT };
        return void res.end(`id: p1\ndata: ${JSON.stringify(answer)}\n\n`);
      }
      const body = seen.body as { id?: unknown; method?: string };
      if (body.id === undefined) return void res.writeHead(202).end();
      // The SDK's server with an event store: a priming event, then the stream ends before the
      // answer (a proxy's idle timeout, or the server's closeSSEStream); the client resumes it.
      const session = `up-${++sessions}`;
      initTags.set(session, body.id);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': session });
      res.end('id: p0\ndata: \n\n');
    });
    gw = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'alice', key: alice }], '', {
        secret: 's'.repeat(40),
        resources: [],
      }),
    );
  });
  after(async () => {
    await gw.close(100);
    await upstream.close();
  });

  /** An initialize whose POST stream ends after its priming event: its session and event id. */
  async function initialize(body = INITIALIZE): Promise<{ session: string; eventId: string }> {
    const res = await fetch(gw.mcpUrl, {
      method: 'POST',
      headers: { ...HEADERS, authorization: `Bearer ${alice}` },
      body,
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    const eventId = /^id: (.+)$/m.exec(text)?.[1];
    assert.ok(eventId !== undefined, text);
    return { session: res.headers.get('mcp-session-id') ?? '', eventId };
  }
  async function resume(session: string, eventId: string): Promise<string> {
    const res = await fetch(gw.mcpUrl, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${alice}`,
        'mcp-session-id': session,
        'last-event-id': eventId,
      },
    });
    assert.equal(res.status, 200);
    return res.text();
  }

  it("hole: failed before: the initialize's answer, replayed on the GET stream that resumes its POST stream, was refused", async () => {
    const a = await initialize();
    replayOf = `up-${sessions}`;
    const text = await resume(a.session, a.eventId);
    // The SDK client reconnects so (its transport's _handleSseStream): it got an error event with
    // id null, and its connect() waited for an answer that never came.
    assert.match(text, /data: \{"jsonrpc":"2\.0","id":0,"result":\{"protocolVersion":"2025-11-25"/);
    assert.doesNotMatch(text, /"error"/);
  });

  it("holds: another session's initialize answer, replayed on this session's GET stream, is still refused", async () => {
    await initialize();
    const other = `up-${sessions}`;
    const b = await initialize();
    replayOf = other;
    const text = await resume(b.session, b.eventId);
    assert.doesNotMatch(text, /"result"/);
    assert.match(text, /"id":null,"error"/);
  });

  it('hole: failed before: the SDK client connects when its initialize POST stream ends after the priming event', async () => {
    const client = new Client({ name: 'sdk', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(gw.mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${alice}` } },
      reconnectionOptions: {
        initialReconnectionDelay: 10,
        maxReconnectionDelay: 50,
        reconnectionDelayGrowFactor: 1,
        maxRetries: 1,
      },
    });
    const connected = client.connect(transport, { timeout: 3000 });
    replayOf = `up-${sessions + 1}`;
    try {
      await connected;
      assert.equal(client.getServerVersion()?.name, 'u');
    } finally {
      await client.close();
    }
  });

  it('holds: a request other than initialize, sent without a session, is not taken on the GET stream of a session its answer names', async () => {
    const call = await initialize('{"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"echo"}}');
    replayOf = `up-${sessions}`;
    const text = await resume(call.session, call.eventId);
    assert.doesNotMatch(text, /"result"/);
    assert.match(text, /"id":null,"error"/);
  });
});

describe('review final2: stdout lost its reader (EPIPE)', () => {
  it('hole: failed before: every request was refused until a restart, and /healthz (the liveness probe) still said ok', async () => {
    const upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
    const dir = await mkdtemp(join(tmpdir(), 'mcpgate-final2-'));
    try {
      const config = join(dir, 'mcpgate.yaml');
      const yaml = `listen: 127.0.0.1:0\nupstream:\n  url: ${upstream.url}\nauth:\n  allow_unauthenticated: true\n`;
      await writeFile(config, yaml);
      // The audit log goes to stdout (the default), a pipe: its reader goes away.
      const gw = await startServe(['--config', config]);
      const mcp = new URL('/mcp', gw.url).href;
      const ping = async () => {
        const res = await fetch(mcp, {
          method: 'POST',
          headers: HEADERS,
          body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
        });
        await res.arrayBuffer();
        return res.status;
      };
      const health = async () => (await fetch(new URL('/healthz', gw.url))).status;
      assert.equal(await ping(), 200);
      assert.equal(await health(), 200);
      gw.child.stdout!.destroy();
      // The first line written after it meets EPIPE; from then on every request is refused.
      let status = 200;
      for (let i = 0; i < 50 && status === 200; i++) status = await ping();
      assert.equal(status, 503);
      assert.equal(await ping(), 503);
      assert.equal(await health(), 503, 'the liveness probe asks for the restart that alone helps');
      // The log says what helps (it said "until it does" before).
      await waitFor(
        () =>
          /lost its reader: MCP requests are refused \(503\) until a restart/.test(gw.stderr())
            ? true
            : undefined,
        5000,
        'the log line',
      );
      await gw.stop();
    } finally {
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('review final2: a resources/read result holding a case variant of contents', () => {
  let upstream: ScriptedUpstream;
  let gw: TestGateway;
  const alice = newKey();
  let result: object = {};
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const body = seen.body as { id?: unknown };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result }));
    });
    gw = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'alice', key: alice }], '', {
        secret: 's'.repeat(40),
        resources: ['file:///public/*'],
      }),
    );
  });
  after(async () => {
    await gw.close(100);
    await upstream.close();
  });

  async function read(): Promise<string> {
    const res = await fetch(gw.mcpUrl, {
      method: 'POST',
      headers: { ...HEADERS, authorization: `Bearer ${alice}` },
      body: '{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///public/a"}}',
    });
    return `${res.status} ${await res.text()}`;
  }

  it('hole: failed before: a "Contents" (or "CONTENTS", "contentſ") holding a URI the key may not read reached the client unfiltered', async () => {
    // Go's encoding/json v1 (mcp-go) fills ReadResourceResult.Contents from any key that folds to
    // it, the last one when there are two: the gateway filtered `contents` and passed the other.
    for (const key of ['Contents', 'CONTENTS', 'contentſ']) {
      const hidden = { uri: 'file:///private/key', text: 'SECRET' };
      result = { [key]: [hidden] };
      const alone = await read();
      assert.match(alone, /^200 /);
      assert.doesNotMatch(alone, /SECRET|private/, key);
      result = { contents: [{ uri: 'file:///public/a', text: 'ok' }], [key]: [hidden] };
      const both = await read();
      assert.match(both, /"contents":\[\{"uri":"file:\/\/\/public\/a","text":"ok"\}\]/);
      assert.doesNotMatch(both, /SECRET|private/, key);
    }
  });
});

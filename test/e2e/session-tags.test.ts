/**
 * Request tags are signed for the principal and the upstream session (Streamable HTTP): a GET stream
 * replays answers of its own session's requests, never another session's. Signed for the key alone,
 * an upstream could answer on one session's GET stream with the tag of a call made in another; SDK
 * clients number requests from 0 in each session, so the client could take it for the answer to a
 * request of its own, and a call's plan filters nothing: a hidden tool list reached it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INITIALIZE =
  '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}';
const CALL = '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{}}}';

describe('request tags and upstream sessions', () => {
  let upstream: ScriptedUpstream;
  let gw: TestGateway;
  const alice = newKey();
  /** The tag of the last tools/call the upstream received, and what the next GET stream sends. */
  let callTag: unknown;
  let replay: (tag: unknown) => object = () => ({});
  before(async () => {
    upstream = await startScriptedUpstream();
    let sessions = 0;
    upstream.set((seen, res) => {
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end(`id: e1\ndata: ${JSON.stringify({ jsonrpc: '2.0', ...replay(callTag) })}\n\n`);
      }
      const body = seen.body as { id?: unknown; method?: string };
      if (body.id === undefined) return void res.writeHead(202).end();
      if (body.method === 'initialize') {
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': `up-${++sessions}` });
        const result = {
          protocolVersion: '2025-11-25',
          capabilities: {},
          serverInfo: { name: 'u', version: '1' },
        };
        return void res.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result }));
      }
      callTag = body.id;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { content: [] } }));
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

  async function post(body: string, session?: string) {
    const res = await fetch(gw.mcpUrl, {
      method: 'POST',
      headers: {
        ...HEADERS,
        authorization: `Bearer ${alice}`,
        ...(session === undefined ? {} : { 'mcp-session-id': session }),
      },
      body,
    });
    return { status: res.status, session: res.headers.get('mcp-session-id') ?? '', text: await res.text() };
  }
  async function getStream(session: string) {
    const res = await fetch(gw.mcpUrl, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${alice}`, 'mcp-session-id': session },
    });
    return { status: res.status, text: await res.text() };
  }

  it("failed before: a call's tag from one session, answered on another session's GET stream, showed that client a hidden tool list", async () => {
    const a = await post(INITIALIZE);
    assert.equal(a.status, 200);
    assert.equal((await post(CALL, a.session)).status, 200);
    const b = await post(INITIALIZE);
    assert.notEqual(b.session, a.session);
    replay = (tag) => ({
      id: tag,
      result: { tools: [{ name: 'secret_tool', inputSchema: { type: 'object' } }] },
    });
    const stream = await getStream(b.session);
    assert.equal(stream.status, 200);
    assert.doesNotMatch(stream.text, /secret_tool/);
    assert.doesNotMatch(stream.text, /"id":5/);
  });

  it('holds: a GET stream of the same session still replays the answer to its own call, with the client id', async () => {
    const a = await post(INITIALIZE);
    assert.equal((await post(CALL, a.session)).status, 200);
    replay = (tag) => ({ id: tag, result: { content: [{ type: 'text', text: 'replayed' }] } });
    const stream = await getStream(a.session);
    assert.equal(stream.status, 200);
    assert.match(stream.text, /"id":5,"result":\{"content":\[\{"type":"text","text":"replayed"\}\]\}/);
  });
});

/**
 * Keys V8's JSON.parse misreads in the upstream's answers, through a real gateway to an upstream
 * that writes the bytes by hand (jsonrpc/key-check.ts). An object built earlier in the same body
 * (built first: JSON.parse builds an object when it closes, so an inner object or an earlier
 * member comes first) spells a key holding a backslash, `r\u006`, after keys no one else sends; the
 * response then spells `result` as `r\u0065sult` after the same keys, which the gateway's JSON.parse
 * read as `r\u006`. The gateway saw an answer without a result, so it filtered no list and passed
 * the bytes on: the client, reading `result`, got every tool, the hidden ones too. Likewise an
 * error's `i\u0064` read as `i\`: an error naming no request, passed with the gateway's tag as
 * its id. Now such an answer is refused (JSON, SSE, the HTTP+SSE transport's stream). The client's
 * bytes are read as text (the test's JSON.parse shares the gateway's V8 and would misread them).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { UNREADABLE } from '../../src/policy/unreadable.ts';
import { callTool, postBody, startRawUpstreamGateway, withBody } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { openStream } from '../helpers/sse-stream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import {
  config as sseConfig,
  KEY as SSE_KEY,
  notification,
  post as ssePost,
} from '../helpers/sse-fixtures.ts';

const KEY = mintKey(randomBytes(32));

/** A key prefix no other body in this process sends (each test its own: V8's memory is shared). */
let serial = 0;
const prefix = () => `q${process.pid}x${serial++}`;

/**
 * A tools/list answer whose `result` key the gateway's JSON.parse reads as `r\u006`: the value of
 * its first member, an object with the same first keys and then `r\u006`, is built before the
 * answer's next keys are read.
 */
function misreadList(tag: string, q: string, tools: string): string {
  const first = String.raw`{"${q}":1,"jsonrpc":"2.0","id":"x","r\\u006":1}`;
  return String.raw`{"${q}":${first},"jsonrpc":"2.0","id":${JSON.stringify(tag)},"r\u0065sult":{"tools":[${tools}]}}`;
}

/**
 * The same, read as spelled by the first parse and misread by the next one of the same bytes: the
 * object holding `r\u006` comes after the answer, in a notification of the same batch, so it is
 * built only once the answer has been (the parse that matches the id reads `result`; the parse that
 * filters the list, after it, does not).
 */
function misreadOnSecondParse(tag: string, q: string, tools: string): string {
  const answer = String.raw`{"${q}":1,"jsonrpc":"2.0","id":${JSON.stringify(tag)},"r\u0065sult":{"tools":[${tools}]}}`;
  const later = String.raw`{"${q}":1,"jsonrpc":"2.0","id":"x","r\\u006":1}`;
  return `[${answer},{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":${later}}}]`;
}

const sse = (body: string) => `event: message\ndata: ${body}\n\n`;

const TOOLS =
  '{"name":"echo","inputSchema":{"type":"object"}},{"name":"secret_admin","inputSchema":{"type":"object"}}';

describe('a key V8 misreads in an answer, through the gateway', () => {
  let upstream: RawUpstreamGateway;
  let answer: (tag: string) => { type: string; body: string };
  before(async () => {
    upstream = await startRawUpstreamGateway(
      withBody((raw, res) => {
        const tag = /"id":"([^"]*)"/.exec(raw.toString('utf8'))?.[1];
        if (tag === undefined) return void res.writeHead(202).end();
        const { type, body } = answer(tag);
        res.writeHead(200, { 'content-type': type });
        res.end(body);
      }),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await upstream.close();
  });

  const list = (id: number) =>
    postBody(upstream, KEY, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }));

  const cases = [
    {
      name: 'a JSON answer misread by the parse that matches ids',
      type: 'application/json',
      make: misreadList,
    },
    {
      name: 'a JSON answer misread by the parse that filters the list',
      type: 'application/json',
      make: misreadOnSecondParse,
    },
    {
      name: 'an SSE event misread by the parse that matches ids',
      type: 'text/event-stream',
      make: (tag: string, q: string, tools: string) => sse(misreadList(tag, q, tools)),
    },
    {
      name: 'an SSE event misread by the parse that filters the list',
      type: 'text/event-stream',
      make: (tag: string, q: string, tools: string) => sse(misreadOnSecondParse(tag, q, tools)),
    },
  ];
  let id = 0;
  for (const { name, type, make } of cases) {
    it(`${name} is refused, its hidden tool never shown`, async () => {
      const q = prefix();
      answer = (tag) => ({ type, body: make(tag, q, TOOLS) });
      const res = await list(++id);
      const text = await res.text();
      assert.doesNotMatch(text, /secret_admin/);
      if (type === 'application/json') {
        assert.equal(res.status, 502, text);
        const error = JSON.parse(text) as { id: unknown; error: { code: number } };
        assert.equal(error.id, id, text);
        assert.equal(error.error.code, -32002, text);
      } else {
        assert.equal(res.status, 200);
        assert.ok(text.includes(`data: ${UNREADABLE}\n`), text);
      }
    });
  }

  for (const type of ['application/json', 'text/event-stream']) {
    it(`an error whose id key is misread is refused, its tag never shown (${type}, no list)`, async () => {
      const q = prefix();
      let sent = '';
      answer = (tag) => {
        sent = tag;
        // `i\u0064` read as `i\`: the gateway saw an error naming no request, and passed it with the tag.
        const first = String.raw`{"${q}":1,"jsonrpc":"2.0","i\\":1,"error":1}`;
        const body = String.raw`{"${q}":${first},"jsonrpc":"2.0","i\u0064":${JSON.stringify(tag)},"error":{"code":-1,"message":"x"}}`;
        return { type, body: type === 'application/json' ? body : sse(body) };
      };
      const res = await callTool(upstream, KEY, ++id);
      const text = await res.text();
      assert.ok(sent !== '' && !text.includes(sent), text);
      assert.equal(res.status, type === 'application/json' ? 502 : 200, text);
    });
  }

  it('an answer whose escaped keys are read as spelled still passes, filtered', async () => {
    const q = prefix();
    answer = (tag) => ({
      type: 'application/json',
      body: String.raw`{"${q}":{"${q}":1,"p\\u0":1},"jsonrpc":"2.0","id":${JSON.stringify(tag)},"r\u0065sult":{"tools":[${TOOLS}]}}`,
    });
    const res = await list(++id);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.doesNotMatch(text, /secret_admin/);
    assert.match(text, /"name":"echo"/);
  });
});

describe('a key V8 misreads in an answer on the HTTP+SSE transport', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let stream: OpenedStream | undefined;
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=S1');
    gateway = await startTestGateway(sseConfig(upstream.url));
  });
  after(async () => {
    stream?.close();
    await gateway.close(200);
    await upstream.close();
  });

  it('an error whose id key is misread is dropped, its tag never shown', async () => {
    stream = await openStream(gateway.mcpUrl, SSE_KEY);
    const endpoint = new URL((await stream.next()).data, gateway.url).href;
    const arrived = upstream.nextPost();
    const accepted = await ssePost(endpoint, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
    });
    assert.equal(accepted.status, 202);
    const tag = ((await arrived) as { id: string }).id;
    const q = prefix();
    const first = String.raw`{"${q}":1,"jsonrpc":"2.0","i\\":1,"error":1}`;
    const body = String.raw`{"${q}":${first},"jsonrpc":"2.0","i\u0064":${JSON.stringify(tag)},"error":{"code":-1,"message":"x"}}`;
    upstream.write(`event: message\ndata: ${body}\n\n`);
    upstream.write(notification('after'));
    const next = await stream.next();
    assert.equal((JSON.parse(next.data) as { params: { data: string } }).params.data, 'after');
    assert.ok(!stream.raw().includes(tag), stream.raw());
  });
});

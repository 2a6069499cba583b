/**
 * Issue 4: per-key allowlists of tools, prompts and resources, end to end. A real SDK client (or
 * raw HTTP bytes, for the wire contract and the smuggling attempts) talks to the in-process gateway;
 * behind it a real MCP server: server-everything (a child process, watched through a recording
 * forwarder) or the SDK upstream (which records what it receives). Every refusal is checked from
 * both sides: the answer the client gets, and what the upstream received (nothing, or exactly the
 * value the gateway judged).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { sealerFor } from '../helpers/event-ids.ts';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import type { JsonRpcId } from '../../src/jsonrpc/message.ts';
import type { RequestContext } from '../../src/pipeline/context.ts';
import { UNREADABLE } from '../../src/policy/unreadable.ts';
import { startEverything } from '../helpers/everything.ts';
import type { Everything } from '../helpers/everything.ts';
import { startRecorder } from '../helpers/recorder.ts';
import type { Recorded, Recorder } from '../helpers/recorder.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

interface KeySpec {
  readonly label: string;
  readonly key: string;
  readonly allow?: readonly string[];
  readonly prompts?: readonly string[];
  readonly resources?: readonly string[];
}

const newKey = () => mintKey(randomBytes(32));
const SESSION_SECRET = 'policy-e2e-0123456789abcdef0123456789';

function configFor(upstreamUrl: string, keys: readonly KeySpec[]): string {
  const lines = [
    'listen: 127.0.0.1:0',
    'upstream:',
    `  url: ${upstreamUrl}`,
    'auth:',
    `  session_secret: "${SESSION_SECRET}"`,
    // Generous buckets: this file is about allowlists, not rate limits.
    'rate_limit:',
    '  capacity: 100000',
    '  refill_per_second: 100000',
    'keys:',
  ];
  for (const k of keys) {
    lines.push(`  - label: ${k.label}`, `    hash: "sha256:${sha256Hex(k.key)}"`);
    // JSON arrays are YAML flow sequences.
    if (k.allow) lines.push(`    allow: ${JSON.stringify(k.allow)}`);
    if (k.prompts) lines.push(`    prompts: ${JSON.stringify(k.prompts)}`);
    if (k.resources) lines.push(`    resources: ${JSON.stringify(k.resources)}`);
  }
  return lines.join('\n') + '\n';
}

async function connect(
  url: string,
  key: string,
  fetchImpl?: FetchLike,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'policy-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
  await client.connect(transport);
  return { client, transport };
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  /** The body as bytes, one char per byte (latin1), to compare with what the upstream sent. */
  readonly raw: string;
  /** The body decoded as UTF-8. */
  readonly body: string;
}

async function post(
  url: string,
  key: string,
  body: string | Uint8Array,
  headers: Record<string, string> = JSON_HEADERS,
): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...headers, authorization: `Bearer ${key}` },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    headers: res.headers,
    raw: bytes.toString('latin1'),
    body: bytes.toString('utf8'),
  };
}

/** What the gateway recorded for one answered request (matched by its X-Request-Id). */
function recorded(gateway: TestGateway, answer: Answer): Promise<RequestContext> {
  const id = answer.headers.get('x-request-id');
  assert.ok(id, 'every answer carries X-Request-Id');
  return waitFor(() => gateway.finished.find((c) => c.requestId === id), 2000, `the record of request ${id}`);
}

const rpc = (id: JsonRpcId, method: string, params?: Record<string, unknown>) =>
  JSON.stringify(
    params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params },
  );

const toolNames = (tools: readonly { name: string }[]) => tools.map((t) => t.name);

/** The SDK v1 client's text for a JSON-RPC error it received. */
const sdkMessage = (code: number, message: string) => `MCP error ${code}: ${message}`;

async function assertRpcError(promise: Promise<unknown>, code: number, message: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof McpError, `an McpError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.message, sdkMessage(code, message));
    return true;
  });
}

describe('server-everything behind the gateway, watched through a recorder', () => {
  const key = newKey();
  let everything: Everything;
  let recorder: Recorder;
  let gateway: TestGateway;
  let client: Client;
  let transport: StreamableHTTPClientTransport;
  /** What server-everything offers, listed directly (not through the gateway). */
  let direct: { tools: string[]; prompts: string[]; resources: string[]; templates: string[] };

  const STATIC = 'demo://resource/static/document/';
  const ALLOWED_RESOURCES = [`${STATIC}f*`, `${STATIC}s*`];

  before(async () => {
    everything = await startEverything('streamableHttp');
    recorder = await startRecorder(everything.url);
    gateway = await startTestGateway(
      configFor(recorder.url, [
        {
          label: 'sum-and-echo',
          key,
          allow: ['echo', 'get-sum'],
          prompts: ['simple-prompt'],
          resources: ALLOWED_RESOURCES,
        },
      ]),
    );
    const plain = new Client({ name: 'policy-e2e-direct', version: '1.0.0' });
    await plain.connect(new StreamableHTTPClientTransport(new URL(everything.url)));
    try {
      direct = {
        tools: toolNames((await plain.listTools()).tools),
        prompts: toolNames((await plain.listPrompts()).prompts),
        resources: (await plain.listResources()).resources.map((r) => r.uri),
        templates: (await plain.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate),
      };
    } finally {
      await plain.close();
    }
    ({ client, transport } = await connect(gateway.mcpUrl, key));
  });
  after(async () => {
    await client?.close();
    await gateway?.close(500);
    await recorder?.close();
    await everything?.close();
  });

  /** Runs `act` and asserts that server-everything was sent nothing meanwhile. */
  async function nothingReaches<T>(act: () => Promise<T>): Promise<T> {
    const before = recorder.received.length;
    const result = await act();
    assert.equal(recorder.received.length, before, 'the upstream received nothing');
    return result;
  }

  it('lists exactly echo and get-sum, and both can be called', async () => {
    assert.ok(
      direct.tools.length > 5 && direct.tools.includes('get-env'),
      'the upstream has many more tools',
    );
    const listed = await client.listTools();
    assert.deepEqual(toolNames(listed.tools).sort(), ['echo', 'get-sum']);
    // The listing the gateway passed on is the upstream's, filtered: the entries are untouched.
    assert.ok(
      listed.tools.every((t) => t.inputSchema.type === 'object' && typeof t.description === 'string'),
    );

    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'through the gateway' } });
    assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: through the gateway' }]);
    const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
    assert.deepEqual(sum.content, [{ type: 'text', text: 'The sum of 2 and 3 is 5.' }]);
    const calls = recorder.messages().filter((m) => m.method === 'tools/call');
    assert.deepEqual(
      calls.map((m) => m.params?.name),
      ['echo', 'get-sum'],
    );
  });

  it('answers every other tool with -32602 `Tool <name> not found`, and the upstream receives nothing', async () => {
    // Tools the upstream has, one it does not, and near-misses of allowed names.
    for (const name of ['get-env', 'toggle-simulated-logging', 'no-such-tool', 'ECHO', 'echo ', 'get-sum2']) {
      await nothingReaches(() =>
        assertRpcError(
          client.callTool({ name, arguments: { a: 1, b: 2, message: 'x' } }),
          -32602,
          `Tool ${name} not found`,
        ),
      );
    }
    // The exact wire answer, in the SDK client's own session.
    const sessionId = transport.sessionId;
    assert.ok(sessionId);
    const answer = await nothingReaches(() =>
      post(gateway.mcpUrl, key, rpc(901, 'tools/call', { name: 'get-env', arguments: {} }), {
        ...JSON_HEADERS,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': transport.protocolVersion ?? '2025-06-18',
      }),
    );
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('content-type'), 'application/json');
    assert.deepEqual(JSON.parse(answer.body), {
      jsonrpc: '2.0',
      id: 901,
      error: { code: -32602, message: 'Tool get-env not found' },
    });
    assert.ok(
      !recorder
        .messages()
        .some((m) => m.method === 'tools/call' && m.params?.name !== 'echo' && m.params?.name !== 'get-sum'),
    );
  });

  it('prompts: lists and gets only the allowed prompt', async () => {
    assert.ok(direct.prompts.length > 1 && direct.prompts.includes('args-prompt'));
    assert.deepEqual(toolNames((await client.listPrompts()).prompts), ['simple-prompt']);
    const prompt = await client.getPrompt({ name: 'simple-prompt' });
    assert.equal(prompt.messages.length, 1);
    for (const name of ['args-prompt', 'resource-prompt', 'no-such-prompt']) {
      await nothingReaches(() =>
        assertRpcError(
          client.getPrompt({ name, arguments: { city: 'x' } }),
          -32602,
          `Prompt ${name} not found`,
        ),
      );
    }
    assert.deepEqual(
      recorder.messages().flatMap((m) => (m.method === 'prompts/get' ? [m.params?.name] : [])),
      ['simple-prompt'],
    );
  });

  it('resources: lists and reads only matching URIs; templates that do not match are dropped', async () => {
    const expected = direct.resources.filter((u) => u.startsWith(`${STATIC}f`) || u.startsWith(`${STATIC}s`));
    assert.ok(expected.length >= 2 && expected.length < direct.resources.length, 'the pattern selects some');
    assert.deepEqual(
      (await client.listResources()).resources.map((r) => r.uri),
      expected,
    );
    assert.ok(direct.templates.length > 0);
    assert.deepEqual((await client.listResourceTemplates()).resourceTemplates, []);

    const allowed = expected[0] as string;
    const read = await client.readResource({ uri: allowed });
    assert.equal(read.contents[0]?.uri, allowed);
    const denied = [
      `${STATIC}architecture.md`,
      'demo://resource/dynamic/text/1',
      // Matches `…/f*` as a string, but an upstream resolving dot segments would read outside it.
      `${STATIC}f/../../../dynamic/text/1`,
      `${STATIC}f/%2e%2e/instructions.md`,
    ];
    for (const uri of denied) {
      await nothingReaches(() =>
        assertRpcError(client.readResource({ uri }), -32602, `Resource ${uri} not found`),
      );
    }
    assert.deepEqual(
      recorder.messages().flatMap((m) => (m.method === 'resources/read' ? [m.params?.uri] : [])),
      [allowed],
    );
  });

  it('the upstream never saw the key', () => {
    assert.ok(recorder.received.length > 5);
    for (const r of recorder.received) {
      assert.equal(r.headers.authorization, undefined);
      assert.ok(!(JSON.stringify(r.headers) + r.body).includes(key));
    }
  });
});

/** SSE events of a body: the blocks between blank lines (LF framing, as the SDK writes it). */
const blocks = (sse: string) => sse.split('\n\n').filter((b) => b !== '');
const dataOf = (block: string) =>
  block
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice(6))
    .join('\n');
const notData = (block: string) => block.split('\n').filter((l) => !l.startsWith('data:'));

describe('list responses are filtered on the wire, everything else passes as sent', () => {
  const key = newKey();
  const KEY = { label: 'two-tools', key, allow: ['echo', 'progress'] };
  const LIST_WITH_PROGRESS = rpc('list-1', 'tools/list', { _meta: { progressToken: 'p1' } });
  /** The event ids this key's client sees (the config's session secret). */
  const seal = sealerFor(SESSION_SECRET, key);
  const sealIds = (block: string) => block.replace(/^id: (.*)$/gm, (_line, id: string) => `id: ${seal(id)}`);
  const MODERN_HEADERS = { ...JSON_HEADERS, 'mcp-protocol-version': '2025-11-25' };

  it('SSE: the progress event and the priming event pass byte for byte (ids sealed), the list is filtered', async () => {
    const upstream = await startSdkUpstream({ stateless: true, eventIds: true });
    const recorder = await startRecorder(upstream.url);
    const gateway = await startTestGateway(configFor(recorder.url, [KEY]));
    try {
      const answer = await post(gateway.mcpUrl, key, LIST_WITH_PROGRESS, MODERN_HEADERS);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('content-type'), 'text/event-stream');
      const sent = recorder.received.at(-1) as Recorded;
      assert.equal(sent.status, 200);

      const ours = blocks(answer.raw);
      const theirs = blocks(sent.response);
      // Priming event (id, retry, empty data), the progress notification, the list result.
      assert.equal(theirs.length, 3, sent.response);
      assert.equal(ours.length, 3, answer.raw);
      assert.match(theirs[0] as string, /^id: \S+\nretry: 1000\ndata: $/);
      // The same bytes but for the event ids, which the client gets sealed for its key.
      assert.equal(ours[0], sealIds(theirs[0] as string));
      assert.equal(ours[1], sealIds(theirs[1] as string));
      assert.deepEqual(JSON.parse(dataOf(ours[1] as string)), {
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: 'p1', progress: 1, total: 2 },
      });
      // The list event keeps its event and id lines; only its data changed.
      assert.deepEqual(notData(ours[2] as string), notData(sealIds(theirs[2] as string)));
      assert.match(ours[2] as string, /^event: message\nid: \S+\ndata: /);
      const upstreamList = JSON.parse(dataOf(theirs[2] as string)) as {
        id: string;
        result: { tools: Tool[] };
      };
      const clientList = JSON.parse(dataOf(ours[2] as string)) as { id: string; result: { tools: Tool[] } };
      assert.ok(toolNames(upstreamList.result.tools).includes('secret_admin'));
      // The upstream saw the gateway's tag; the client gets its own id back.
      assert.notEqual(upstreamList.id, 'list-1');
      assert.deepEqual(clientList, {
        ...upstreamList,
        id: 'list-1',
        result: {
          ...upstreamList.result,
          tools: upstreamList.result.tools.filter((t) => KEY.allow.includes(t.name)),
        },
      });
      assert.deepEqual(toolNames(clientList.result.tools), ['echo', 'progress']);
      // Event ids are in order, each the upstream's sealed for the key.
      const ids = (text: string) => [...text.matchAll(/^id: (.*)$/gm)].map((m) => m[1] as string);
      assert.deepEqual(ids(answer.raw), ids(sent.response).map(seal));
      assert.equal(ids(answer.raw).length, 3);
    } finally {
      await gateway.close(500);
      await recorder.close();
      await upstream.close();
    }
  });

  it('JSON response mode: the body is filtered and Content-Length matches it', async () => {
    const upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
    const recorder = await startRecorder(upstream.url);
    const gateway = await startTestGateway(configFor(recorder.url, [KEY]));
    try {
      const answer = await post(gateway.mcpUrl, key, LIST_WITH_PROGRESS, MODERN_HEADERS);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('content-type'), 'application/json');
      assert.equal(answer.headers.get('content-length'), String(Buffer.byteLength(answer.body)));
      const sent = recorder.received.at(-1) as Recorded;
      const upstreamList = JSON.parse(sent.response) as { id: string; result: { tools: Tool[] } };
      assert.ok(toolNames(upstreamList.result.tools).includes('secret_admin'));
      assert.deepEqual(JSON.parse(answer.body), {
        ...upstreamList,
        id: 'list-1',
        result: {
          ...upstreamList.result,
          tools: upstreamList.result.tools.filter((t) => KEY.allow.includes(t.name)),
        },
      });
      assert.equal((JSON.parse(answer.body) as { id: string }).id, 'list-1');
    } finally {
      await gateway.close(500);
      await recorder.close();
      await upstream.close();
    }
  });

  it('a hand-written SSE upstream: events stream before the list, framing and fields are kept', async () => {
    let release: () => void = () => {};
    const listMayFollow = new Promise<void>((resolve) => (release = resolve));
    /** Set when the client had not seen the progress event 5 s after it was sent. */
    let heldBack = false;
    const tools = [{ name: 'secret_admin' }, { name: 'echo' }, { name: 'progress' }, { name: 'other' }];
    const COMMENT = ': opened\r\n\r\n';
    const PROGRESS =
      'retry: 2500\r\nid: e1\r\nevent: message\r\n' +
      'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p1","progress":1}}\r\n\r\n';
    const TAIL = 'id: e3\ndata: not json\n\n';
    const http: HttpServer = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', async () => {
        // Answers with the id it received (the gateway's tag), as a real server does.
        const id = (JSON.parse(body) as { id: string }).id;
        const listData = JSON.stringify({ jsonrpc: '2.0', id, result: { tools } });
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(COMMENT);
        res.write(PROGRESS);
        // The list is held back until the client has seen the progress event: the gateway must
        // not hold earlier events while it waits for the list to complete.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          listMayFollow,
          new Promise<void>((resolve) => {
            timer = setTimeout(() => {
              heldBack = true;
              resolve();
            }, 5000);
          }),
        ]);
        clearTimeout(timer);
        const head = `id: e2\nevent: message\ndata: ${listData}`;
        const cut = head.length - 20;
        res.write(head.slice(0, cut));
        setTimeout(() => {
          res.write(`${head.slice(cut)}\n\n`);
          res.end(TAIL);
        }, 20);
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const gateway = await startTestGateway(
      configFor(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`, [KEY]),
    );
    try {
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: { ...JSON_HEADERS, authorization: `Bearer ${key}` },
        body: LIST_WITH_PROGRESS,
      });
      assert.equal(res.status, 200);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('latin1');
        if (text.includes('"progress":1')) release();
      }
      const filtered = JSON.stringify({
        jsonrpc: '2.0',
        id: 'list-1',
        result: { tools: [{ name: 'echo' }, { name: 'progress' }] },
      });
      assert.equal(heldBack, false, 'the progress event reached the client before the list was sent');
      // Blocks with an id are written again with it sealed for the key (fields kept, LF line ends).
      const progress =
        `event: message\nid: ${seal('e1')}\nretry: 2500\n` +
        'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p1","progress":1}}\n\n';
      // Data that is not JSON is not passed on unread: it becomes an error event (id kept, sealed).
      const unreadable = `id: ${seal('e3')}\ndata: ${UNREADABLE}\n\n`;
      assert.equal(
        text,
        `${COMMENT}${progress}event: message\nid: ${seal('e2')}\ndata: ${filtered}\n\n${unreadable}`,
      );
    } finally {
      release();
      await gateway.close(500);
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});

describe('a list response the gateway cannot read', () => {
  const key = newKey();
  let http: HttpServer;
  let gateway: TestGateway;
  let answerWith: { status: number; type: string | undefined } = { status: 200, type: undefined };
  const LIST = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    result: { tools: [{ name: 'secret_admin' }, { name: 'echo' }] },
  });
  before(async () => {
    http = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(
          answerWith.status,
          answerWith.type === undefined ? {} : { 'content-type': answerWith.type },
        );
        res.end(LIST);
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    gateway = await startTestGateway(
      configFor(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`, [
        { label: 'echo-only', key, allow: ['echo'] },
      ]),
    );
  });
  after(async () => {
    await gateway.close(500);
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  it('is never passed on unfiltered (an unexpected Content-Type or 2xx status)', async () => {
    for (const answer of [
      { status: 200, type: 'text/plain' },
      { status: 200, type: undefined },
      { status: 200, type: 'application/octet-stream' },
      { status: 203, type: 'application/json' },
    ]) {
      answerWith = answer;
      const res = await post(gateway.mcpUrl, key, rpc(1, 'tools/list'));
      assert.ok(!res.body.includes('secret_admin'), `${answer.status} ${answer.type}: ${res.body}`);
    }
  });
});

describe('2,500 tools in pages of 100', () => {
  const key = newKey();
  const allowed = (name: string) => name === 'echo' || name.startsWith('tool_1');
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ extraTools: 2495, pageSize: 100 });
    gateway = await startTestGateway(
      configFor(upstream.url, [{ label: 'paged', key, allow: ['tool_1*', 'echo'] }]),
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
  });

  async function allPages(client: Client): Promise<{ tools: Tool[]; nextCursor: string | undefined }[]> {
    const pages: { tools: Tool[]; nextCursor: string | undefined }[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor });
      pages.push({ tools: page.tools, nextCursor: page.nextCursor });
      cursor = page.nextCursor;
      assert.ok(pages.length <= 30, 'the listing ends');
    } while (cursor !== undefined);
    return pages;
  }

  it('filters every page, gives a sealed nextCursor (also on empty pages) the SDK client pages with, and the whole listing is the allowed subset', async () => {
    const plain = new Client({ name: 'policy-e2e-direct', version: '1.0.0' });
    await plain.connect(new StreamableHTTPClientTransport(new URL(upstream.url)));
    const { client } = await connect(gateway.mcpUrl, key);
    try {
      const upstreamPages = await allPages(plain);
      const pages = await allPages(client);
      assert.equal(upstreamPages.length, 25);
      assert.equal(upstreamPages.flatMap((p) => p.tools).length, 2500);
      assert.equal(pages.length, 25);
      for (const [i, page] of pages.entries()) {
        const theirs = upstreamPages[i] as (typeof upstreamPages)[0];
        // The upstream's cursor is never shown: the client gets (and sends back) a seal of it.
        assert.equal(page.nextCursor === undefined, theirs.nextCursor === undefined, `page ${i}: nextCursor`);
        if (page.nextCursor !== undefined) assert.match(page.nextCursor, /^c1\.[A-Za-z0-9_-]+$/);
        assert.deepEqual(
          page.tools,
          theirs.tools.filter((t) => allowed(t.name)),
          `page ${i}: filtered`,
        );
      }
      // Pages 1-9 (tool_0095 ... tool_0994) and 21-23 hold no allowed tool: empty, cursor kept.
      const empty = pages.flatMap((p, i) => (p.tools.length === 0 ? [i] : []));
      assert.deepEqual(empty, [1, 2, 3, 4, 5, 6, 7, 8, 9, 21, 22, 23, 24]);
      for (const i of empty.slice(0, -1))
        assert.ok(pages[i]?.nextCursor, `page ${i}: a cursor on an empty page`);
      assert.equal(pages[24]?.nextCursor, undefined);

      const expected = ['echo', ...Array.from({ length: 1000 }, (_, i) => `tool_${1000 + i}`)];
      assert.deepEqual(toolNames(pages.flatMap((p) => p.tools)), expected);
    } finally {
      await client.close();
      await plain.close();
    }
  });
});

describe('notifications/tools/list_changed', () => {
  const key = newKey();
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ announce: true });
    gateway = await startTestGateway(
      configFor(upstream.url, [{ label: 'watcher', key, allow: ['echo', 'announce', 'new_*'] }]),
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
  });

  it('passes through, on the call stream and on the GET stream, and the next list is filtered afresh', async () => {
    // The client's standalone GET stream is open (the upstream registered it) once its headers arrive.
    let getOpened: () => void = () => {};
    const streamOpen = new Promise<void>((resolve) => (getOpened = resolve));
    const watching: FetchLike = async (url, init) => {
      const res = await fetch(url, init);
      if (init?.method === 'GET' && res.status === 200) getOpened();
      return res;
    };
    const { client } = await connect(gateway.mcpUrl, key, watching);
    let changed = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
    try {
      assert.deepEqual(toolNames((await client.listTools()).tools), ['echo', 'announce']);

      // Sent on the POST stream of the call that changed the list.
      await client.callTool({
        name: 'announce',
        arguments: { add: ['new_one', 'hidden_one'], related: true },
      });
      await waitFor(() => changed === 1 || undefined, 3000, 'list_changed on the call stream');
      assert.deepEqual(toolNames((await client.listTools()).tools), ['echo', 'announce', 'new_one']);

      // Sent on the standalone GET stream.
      await streamOpen;
      await client.callTool({ name: 'announce', arguments: { add: ['hidden_two', 'new_two'] } });
      await waitFor(() => changed === 2 || undefined, 3000, 'list_changed on the GET stream');
      assert.deepEqual(toolNames((await client.listTools()).tools), [
        'echo',
        'announce',
        'new_one',
        'new_two',
      ]);
      await assertRpcError(
        client.callTool({ name: 'hidden_two', arguments: {} }),
        -32602,
        'Tool hidden_two not found',
      );
      assert.ok(!upstream.toolCalls().includes('hidden_two'));
    } finally {
      await client.close();
    }
  });
});

describe('requests the gateway refuses, at the HTTP level', () => {
  const key = newKey();
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let sentinel = 0;
  before(async () => {
    upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
    gateway = await startTestGateway(configFor(upstream.url, [{ label: 'echo-only', key, allow: ['echo'] }]));
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
  });

  const send = (body: string | Uint8Array, headers?: Record<string, string>) =>
    post(gateway.mcpUrl, key, body, headers);

  /**
   * The upstream received nothing since `before`: an allowed call sent now is the very next
   * thing it receives (so a request forwarded late would be caught as well).
   */
  async function assertUpstreamUntouched(before: number): Promise<void> {
    const message = `sentinel ${++sentinel}`;
    const answer = await send(rpc('sentinel', 'tools/call', { name: 'echo', arguments: { message } }));
    assert.equal(answer.status, 200, answer.body);
    assert.equal(upstream.received.length, before + 1, 'the upstream received nothing but the sentinel');
    assert.ok(upstream.received.at(-1)?.body.includes(message));
  }

  /** The refusal's exact JSON-RPC error, and an upstream that received nothing. */
  async function assertRefused(
    body: string | Uint8Array,
    expected: { status: number; id: JsonRpcId | null; code: number; message?: string },
    headers?: Record<string, string>,
  ): Promise<RequestContext> {
    const before = upstream.received.length;
    const answer = await send(body, headers);
    assert.equal(answer.status, expected.status, answer.body);
    assert.equal(answer.headers.get('content-type'), 'application/json');
    const error = JSON.parse(answer.body) as {
      jsonrpc: string;
      id: JsonRpcId | null;
      error: { code: number; message: string };
    };
    assert.equal(error.jsonrpc, '2.0');
    assert.equal(error.id, expected.id);
    assert.equal(error.error.code, expected.code);
    if (expected.message !== undefined) assert.equal(error.error.message, expected.message);
    const ctx = await recorded(gateway, answer);
    await assertUpstreamUntouched(before);
    return ctx;
  }

  /**
   * Allowed: the upstream receives exactly `judged`: the bytes `forwarded` (by default the canonical
   * bytes of the parsed body), which parse as `judged`.
   */
  async function assertForwarded(
    body: string | Uint8Array,
    judged: unknown,
    forwarded = JSON.stringify(judged),
  ): Promise<Answer> {
    const before = upstream.received.length;
    const answer = await send(body);
    assert.equal(answer.status, 200, answer.body);
    assert.equal(upstream.received.length, before + 1);
    // Byte for byte what was judged, except the id: the upstream gets the gateway's tag for it.
    const sent = upstream.received.at(-1)?.body ?? '';
    const tag = (JSON.parse(sent) as { id: unknown }).id;
    assert.ok(typeof tag === 'string' && tag !== (judged as { id: unknown }).id, sent);
    const judgedId = JSON.stringify((judged as { id: unknown }).id);
    const untagged = sent.replace(`"id":${JSON.stringify(tag)}`, `"id":${judgedId}`);
    assert.equal(untagged, forwarded);
    assert.deepStrictEqual(JSON.parse(untagged), judged);
    assert.equal((JSON.parse(answer.body) as { id: unknown }).id, (judged as { id: unknown }).id);
    return answer;
  }

  const TOOL_DENIED = (id: JsonRpcId, name: string) => ({
    status: 200,
    id,
    code: -32602,
    message: `Tool ${name} not found`,
  });
  const PARSE_ERROR = { status: 400, id: null, code: -32700 };
  const INVALID = (id: JsonRpcId | null) => ({ status: 400, id, code: -32600 });
  const call = (id: JsonRpcId, name: string) => rpc(id, 'tools/call', { name, arguments: {} });

  it('a denied tools/call is audited: decision deny, ERR_TOOL_DENIED, the tool name', async () => {
    const ctx = await assertRefused(call(1, 'secret_admin'), TOOL_DENIED(1, 'secret_admin'));
    assert.equal(ctx.decision, 'deny');
    assert.equal(ctx.reason, 'ERR_TOOL_DENIED');
    assert.equal(ctx.calls.length, 1);
    assert.equal(ctx.calls[0]?.tool, 'secret_admin');
    assert.equal(ctx.calls[0]?.rpc_method, 'tools/call');
    assert.equal(ctx.calls[0]?.decision, 'deny');
    assert.equal(ctx.status, 200);
  });

  describe('smuggling attempts', () => {
    it('duplicate JSON keys: the value judged is the only one forwarded', async () => {
      // JSON.parse keeps the last duplicate: judged (and refused) as secret_admin.
      await assertRefused(
        '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","name":"secret_admin","arguments":{}}}',
        TOOL_DENIED(2, 'secret_admin'),
      );
      // Judged as echo: a first-key-wins upstream must not see secret_admin at all.
      const answer = await assertForwarded(
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"secret_admin","name":"echo","arguments":{"message":"dup"}}}',
        {
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: { name: 'echo', arguments: { message: 'dup' } },
        },
      );
      assert.match(answer.body, /Echo: dup/);
      // Duplicate params objects and duplicate methods, the same way.
      await assertRefused(
        '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"},"params":{"name":"secret_admin"}}',
        TOOL_DENIED(4, 'secret_admin'),
      );
      // The member a later one replaced is left out; the one kept stays where the client put it.
      const listed = await assertForwarded(
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"secret_admin"},"method":"tools/list"}',
        { jsonrpc: '2.0', id: 5, method: 'tools/list', params: { name: 'secret_admin' } },
        '{"jsonrpc":"2.0","id":5,"params":{"name":"secret_admin"},"method":"tools/list"}',
      );
      assert.deepEqual(toolNames((JSON.parse(listed.body) as { result: { tools: Tool[] } }).result.tools), [
        'echo',
      ]);
      assert.ok(!upstream.toolCalls().includes('secret_admin'));
    });

    it('\\u escapes in the tool name are judged decoded, and forwarded decoded', async () => {
      await assertRefused(
        '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"secret\\u005fadmin","arguments":{}}}',
        TOOL_DENIED(6, 'secret_admin'),
      );
      await assertRefused(
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"\\u0073\\u0065\\u0063\\u0072\\u0065\\u0074_admin"}}',
        TOOL_DENIED(7, 'secret_admin'),
      );
      await assertForwarded('{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"\\u0065cho"}}', {
        jsonrpc: '2.0',
        id: 8,
        method: 'tools/call',
        params: { name: 'echo' },
      });
      // A NUL (C strings stop there) or a lone surrogate (encoders replace it): not a name to judge.
      for (const [id, name] of [
        [9, 'echo\\u0000secret_admin'],
        [10, 'echo\\ud800'],
      ] as const) {
        await assertRefused(
          `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"${name}"}}`,
          {
            status: 200,
            id,
            code: -32602,
          },
        );
      }
    });

    it('a byte order mark', async () => {
      const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(call(11, 'echo'))]);
      await assertRefused(bom, PARSE_ERROR);
    });

    it('trailing bytes after the JSON value', async () => {
      await assertRefused(`${call(12, 'echo')}${call(13, 'secret_admin')}`, PARSE_ERROR);
      await assertRefused(`${call(14, 'echo')} garbage`, PARSE_ERROR);
      await assertRefused(`${call(15, 'echo')}\n${call(16, 'secret_admin')}`, PARSE_ERROR);
    });

    it('bytes that are not UTF-8', async () => {
      const wrap = (bytes: number[]) =>
        Buffer.concat([
          Buffer.from(
            '{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"echo","arguments":{"message":"',
          ),
          Buffer.from(bytes),
          Buffer.from('"}}}'),
        ]);
      await assertRefused(wrap([0xff]), PARSE_ERROR);
      // An overlong "_" (C1 9F): a lenient decoder would read "secret_admin".
      const overlong = Buffer.concat([
        Buffer.from('{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":"secret'),
        Buffer.from([0xc1, 0x9f]),
        Buffer.from('admin"}}'),
      ]);
      await assertRefused(overlong, PARSE_ERROR);
      await assertRefused(wrap([0xed, 0xa0, 0x80]), PARSE_ERROR); // an encoded surrogate
      // UTF-16 with its BOM.
      await assertRefused(Buffer.from(`\ufeff${call(19, 'echo')}`, 'utf16le'), PARSE_ERROR);
    });

    it('params that is not an object', async () => {
      await assertRefused(
        '{"jsonrpc":"2.0","id":20,"method":"tools/call","params":["secret_admin"]}',
        INVALID(20),
      );
      await assertRefused(
        '{"jsonrpc":"2.0","id":21,"method":"tools/call","params":"secret_admin"}',
        INVALID(21),
      );
      await assertRefused('{"jsonrpc":"2.0","id":22,"method":"tools/call","params":null}', INVALID(22));
    });

    it('a method of another type or case', async () => {
      await assertRefused(
        '{"jsonrpc":"2.0","id":23,"method":42,"params":{"name":"secret_admin"}}',
        INVALID(23),
      );
      await assertRefused(
        '{"jsonrpc":"2.0","id":24,"method":["tools/call"],"params":{"name":"secret_admin"}}',
        INVALID(24),
      );
      for (const [id, method] of [
        [25, 'Tools/Call'],
        [26, 'TOOLS/CALL'],
        [27, 'tools/Call'],
        [28, 'toolſ/call'], // U+017F upper-cases to S
      ] as const) {
        await assertRefused(rpc(id, method, { name: 'secret_admin' }), INVALID(id));
      }
      // An unknown method (here: a trailing space) is denied as the upstream would: method not found.
      await assertRefused(rpc(29, 'tools/call ', { name: 'secret_admin' }), {
        status: 200,
        id: 29,
        code: -32601,
        message: 'Method not found',
      });
    });

    it('keys that differ only by case (a case-insensitive upstream would read the other one)', async () => {
      const body =
        '{"jsonrpc":"2.0","id":33,"method":"tools/call","params":{"name":"echo","NAME":"secret_admin"}}';
      const ctx = await assertRefused(body, INVALID(33));
      assert.equal(ctx.decision, 'invalid');
      assert.equal(ctx.reason, 'ERR_INVALID_REQUEST');
    });

    it('a batch hiding a denied call among allowed ones is refused whole', async () => {
      const batch = `[${call(30, 'echo')},${call(31, 'secret_admin')},${rpc(32, 'tools/list')},${JSON.stringify(
        {
          jsonrpc: '2.0',
          method: 'notifications/progress',
          params: { progressToken: 't', progress: 1 },
        },
      )}]`;
      const before = upstream.received.length;
      const answer = await send(batch);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('content-type'), 'application/json');
      const refused = 'batch refused: it contains a request that was denied';
      // One error per request id (the notification has none), in order.
      assert.deepEqual(JSON.parse(answer.body), [
        { jsonrpc: '2.0', id: 30, error: { code: -32600, message: refused } },
        { jsonrpc: '2.0', id: 31, error: { code: -32602, message: 'Tool secret_admin not found' } },
        { jsonrpc: '2.0', id: 32, error: { code: -32600, message: refused } },
      ]);
      const ctx = await recorded(gateway, answer);
      assert.equal(ctx.decision, 'deny');
      assert.equal(ctx.reason, 'ERR_BATCH_DENIED');
      assert.deepEqual(
        ctx.calls.map((c) => [c.rpc_method, c.decision, c.tool]),
        [
          ['tools/call', 'allow', 'echo'],
          ['tools/call', 'deny', 'secret_admin'],
          ['tools/list', 'allow', undefined],
          ['notifications/progress', 'allow', undefined],
        ],
      );
      await assertUpstreamUntouched(before);
    });
  });

  it("a batch repeating a request id is refused (one list would be answered under the other's plan)", async () => {
    // Were it forwarded, the upstream's prompts/list answer (id 1) would meet the tools/list plan
    // for id 1, have no `tools` to filter, and reach a key that may list no prompt at all.
    for (const [first, second] of [
      [1, 1],
      [1, '1'],
    ] as const) {
      const before = upstream.received.length;
      const answer = await send(`[${rpc(first, 'prompts/list')},${rpc(second, 'tools/list')}]`);
      assert.equal(answer.status, 400, answer.body);
      const errors = JSON.parse(answer.body) as { id: JsonRpcId; error: { code: number } }[];
      assert.deepEqual(
        errors.map((e) => [e.id, e.error.code]),
        [
          [first, -32600],
          [second, -32600],
        ],
      );
      assert.ok(!answer.body.includes('internal_prompt'));
      const ctx = await recorded(gateway, answer);
      assert.equal(ctx.reason, 'ERR_INVALID_REQUEST');
      await assertUpstreamUntouched(before);
    }
  });

  it('2026-07-28: Mcp-Name claiming echo while the body calls secret_admin gets 400 / -32020', async () => {
    const ctx = await assertRefused(
      call(40, 'secret_admin'),
      { status: 400, id: 40, code: -32020 },
      { ...JSON_HEADERS, 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
    );
    assert.equal(ctx.reason, 'ERR_HEADER_MISMATCH');
  });

  it('a repeated Mcp-Name header is refused, even when its joined value equals the body', async () => {
    // Node joins repeated headers with ", ": "echo" + "x" would read as the body's "echo, x".
    const body = call(44, 'echo, x');
    const before = upstream.received.length;
    const answer = await new Promise<{ status: number; body: string; requestId: string }>(
      (resolve, reject) => {
        const req = httpRequest(gateway.mcpUrl, {
          method: 'POST',
          // A flat array, so a header can be sent twice (Host is then ours to send).
          headers: [
            'host',
            new URL(gateway.mcpUrl).host,
            'content-type',
            'application/json',
            'accept',
            JSON_HEADERS.accept,
            'authorization',
            `Bearer ${key}`,
            'mcp-method',
            'tools/call',
            'mcp-name',
            'echo',
            'mcp-name',
            'x',
          ],
        });
        req.on('error', reject);
        req.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: text,
              requestId: String(res.headers['x-request-id']),
            }),
          );
        });
        req.end(body);
      },
    );
    assert.equal(answer.status, 400, answer.body);
    const error = JSON.parse(answer.body) as { id: JsonRpcId; error: { code: number } };
    assert.equal(error.id, null);
    assert.equal(error.error.code, -32020);
    const ctx = await waitFor(
      () => gateway.finished.find((c) => c.requestId === answer.requestId),
      2000,
      'the record',
    );
    assert.equal(ctx.reason, 'ERR_HEADER_MISMATCH');
    await assertUpstreamUntouched(before);
  });

  it('a POST that is not application/json gets 415, with the id a small body holds', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'text/event-stream',
      'application/jsonx',
      undefined,
    ]) {
      const headers: Record<string, string> = { accept: JSON_HEADERS.accept };
      if (type !== undefined) headers['content-type'] = type;
      const ctx = await assertRefused(
        new TextEncoder().encode(call(41, 'echo')),
        { status: 415, id: 41, code: -32600 },
        headers,
      );
      assert.equal(ctx.status, 415, `content-type ${type}`);
      assert.equal(ctx.reason, 'ERR_UNSUPPORTED_MEDIA_TYPE');
    }
    // Parameters and case do not matter.
    const answer = await send(call(42, 'echo'), {
      ...JSON_HEADERS,
      'content-type': 'Application/JSON; charset=utf-8',
    });
    assert.equal(answer.status, 200, answer.body);
  });

  it('a body that is not JSON gets -32700 with HTTP 400', async () => {
    for (const body of [
      'hello',
      '',
      '{"jsonrpc":"2.0","id":43,',
      "{'jsonrpc':'2.0'}",
      'undefined',
      '{"a":1,}',
    ]) {
      const ctx = await assertRefused(body, PARSE_ERROR);
      assert.equal(ctx.reason, 'ERR_PARSE');
      assert.equal(ctx.decision, 'invalid');
    }
  });
});

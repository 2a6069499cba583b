/**
 * Attack review (surface26): the seams between protocol revisions and the less-used surface (tasks
 * named in `_meta`, 2026-07-28 listen subscriptions, a task that asks the user). Through the real
 * gateway in front of a scripted upstream, a stateless v1 SDK server with a task store, and
 * server-everything with the v1 SDK client. "failed before:" tests failed on the code they were
 * written against; "holds:" tests are attacks that held.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  InMemoryTaskMessageQueue,
  InMemoryTaskStore,
} from '@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js';
import {
  CallToolResultSchema,
  ElicitRequestSchema,
  ElicitResultSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startEverything } from '../helpers/everything.ts';
import type { Everything } from '../helpers/everything.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

const ALICE = newKey();
const BOB = newKey();
const SECRET = 's'.repeat(40);
const RELATED = 'io.modelcontextprotocol/related-task';

type Rpc = { id?: string | number; method?: string; params?: Record<string, unknown> };

function config(upstreamUrl: string, aliceAllow: readonly string[]): string {
  return reviewConfig(
    upstreamUrl,
    [
      { label: 'alice', key: ALICE, allow: aliceAllow },
      { label: 'bob', key: BOB, allow: ['*'] },
    ],
    '',
    { secret: SECRET, resources: [] },
  );
}

const headers = (key: string) => ({
  authorization: `Bearer ${key}`,
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
});

let nextId = 1;
async function post(
  gateway: TestGateway,
  key: string,
  method: string,
  params?: Record<string, unknown>,
): Promise<{ status: number; text: string }> {
  const res = await fetch(gateway.mcpUrl, {
    method: 'POST',
    headers: headers(key),
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, ...(params ? { params } : {}) }),
  });
  return { status: res.status, text: await res.text() };
}

const json = (res: ServerResponse, body: unknown) => {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
};

describe('surface26 review: tasks named in a client request\u2019s _meta', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway | undefined;
  let taskCounter = 0;

  // A stateless upstream (no sessions, as a 2025-11-25 server behind a load balancer with a shared
  // task store): a call with `params.task` creates a task, any other call answers at once.
  function script(seen: Seen, res: ServerResponse): void {
    const m = seen.body as Rpc;
    if (m.id === undefined) return void res.writeHead(202).end();
    const params = m.params ?? {};
    const result =
      m.method === 'tools/call' && typeof params.task === 'object'
        ? { task: { taskId: `${String(params.name)}-task-${++taskCounter}`, status: 'working' } }
        : { content: [{ type: 'text', text: 'called' }] };
    json(res, { jsonrpc: '2.0', id: m.id, result });
  }

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set(script);
  });
  afterEach(async () => {
    await gateway?.close(200);
    gateway = undefined;
  });
  after(async () => {
    await upstream.close();
  });

  async function createTask(key: string, tool: string): Promise<string> {
    const created = await post(gateway!, key, 'tools/call', { name: tool, arguments: {}, task: {} });
    assert.equal(created.status, 200, created.text);
    return (JSON.parse(created.text) as { result: { task: { taskId: string } } }).result.task.taskId;
  }

  /** The calls of `echo` the upstream received whose `_meta` names a related task. */
  const relatedSeen = () =>
    upstream.seen.filter((s) => s.raw.includes(RELATED) && (s.body as Rpc).method === 'tools/call');

  it('failed before: a call of an allowed tool whose _meta names another key\u2019s task (related-task) reached the upstream', async () => {
    // 2025-11-25: a request whose `_meta["io.modelcontextprotocol/related-task"]` names a task is
    // part of that task. The v1 SDK's server (shared/protocol.js `_onrequest`) then hands the task id
    // to the tool (`extra.taskId`), marks the task `input_required` when the tool asks the client
    // something, and queues the call's answer and every request and notification it sends into
    // that task's message queue, which `tasks/result` of the task delivers; without a session
    // (a stateless server, whose task store every client shares) it does not check whose task it is.
    // So Alice, allowed only `echo`, could put her tool's questions into Bob's task (Bob's client
    // shows them as his task's and sends its answers to Alice's call), and steer the status of a
    // task her `tasks/get` is told does not exist.
    gateway = await startTestGateway(config(upstream.url, ['echo']));
    const bobTask = await createTask(BOB, 'slow');
    const before = upstream.seen.length;
    const res = await post(gateway, ALICE, 'tools/call', {
      name: 'echo',
      arguments: {},
      _meta: { [RELATED]: { taskId: bobTask } },
    });
    assert.equal(res.status, 200, res.text);
    const body = JSON.parse(res.text) as { error?: { code: number; message: string } };
    assert.deepEqual(body.error, { code: -32602, message: 'Failed to retrieve task: Task not found' });
    assert.equal(upstream.seen.length, before, 'the call never reaches the upstream');
    const line = gateway.auditLines.at(-1) as { decision?: string; reason?: string };
    assert.equal(line.decision, 'deny');
    assert.equal(line.reason, 'ERR_TASK_DENIED');
  });

  it('failed before: related-task naming a task whose tool a reload took away, or spelled so an upstream reads another task, reached the upstream', async () => {
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const slowTask = await createTask(ALICE, 'slow');
    const echoTask = await createTask(ALICE, 'echo');
    const { config: next } = parseConfigText(config(upstream.url, ['echo']), {}, Date.now());
    assert.ok(next);
    assert.equal((await gateway.runtime.reload(next)).applied, true);
    const before = upstream.seen.length;
    const call = (related: unknown) =>
      post(gateway!, ALICE, 'tools/call', { name: 'echo', arguments: {}, _meta: { [RELATED]: related } });
    // The task of a tool the key lost is unknown to it, as tasks/get says.
    const lost = await call({ taskId: slowTask });
    assert.match(lost.text, /Task not found/);
    // A task id that is not a string (a store keyed by text reads 1 as "1"), or no object at all:
    // the gateway cannot say whose task it names.
    for (const odd of [{ taskId: 1 }, { taskId: null }, 'x', ['a'], { TaskId: echoTask }]) {
      const r = await call(odd);
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /"error"/, JSON.stringify(odd));
    }
    assert.equal(upstream.seen.length, before, 'none reaches the upstream');
    // The key's own task, whose tool it may still use, is its to name.
    const own = await call({ taskId: echoTask });
    assert.match(own.text, /called/);
    assert.equal(relatedSeen().length, 1);
    // The lost task behind the own one (a first-wins reader takes the first of a repeated key), or
    // the member spelled with an escape: the upstream reads only the task that was judged.
    const raw = (meta: string) =>
      fetch(gateway!.mcpUrl, {
        method: 'POST',
        headers: headers(ALICE),
        body: `{"jsonrpc":"2.0","id":"raw","method":"tools/call","params":{"name":"echo","arguments":{},"_meta":${meta}}}`,
      }).then((r) => r.text());
    assert.match(
      await raw(`{"${RELATED}":{"taskId":"${echoTask}"},"${RELATED}":{"taskId":"${slowTask}"}}`),
      /Task not found/,
    );
    assert.match(
      await raw(`{"io.modelcontextprotocol\\/related-task":{"taskId":"${slowTask}"}}`),
      /Task not found/,
    );
    assert.match(
      await raw(`{"${RELATED}":{"taskId":"${slowTask}"},"${RELATED}":{"taskId":"${echoTask}"}}`),
      /called/,
    );
    const last = relatedSeen().at(-1)!.raw;
    assert.ok(!last.includes(slowTask), `the upstream read: ${last}`);
  });
});

/**
 * A stateless v1 SDK server (a fresh server and transport per request, as the SDK's stateless
 * example does) sharing one task store and message queue: `slow` is a task tool that never ends,
 * `ask` asks the client a question (an elicitation) and answers with the reply.
 */
async function startStatelessTaskServer(): Promise<{ url: string; close(): Promise<void> }> {
  const taskStore = new InMemoryTaskStore();
  const taskMessageQueue = new InMemoryTaskMessageQueue();
  const build = () => {
    const server = new McpServer(
      { name: 'stateless-tasks', version: '1' },
      {
        capabilities: { tools: {}, tasks: { requests: { tools: { call: {} } } } },
        taskStore,
        taskMessageQueue,
      },
    );
    server.experimental.tasks.registerToolTask(
      'slow',
      { description: 'slow', execution: { taskSupport: 'required' } },
      {
        createTask: async (extra) => ({ task: await extra.taskStore.createTask({ ttl: 60_000 }) }),
        getTask: async (extra) => (await extra.taskStore.getTask(extra.taskId))!,
        getTaskResult: async (extra) => (await extra.taskStore.getTaskResult(extra.taskId)) as never,
      },
    );
    server.registerTool('ask', { description: 'asks the user' }, async (extra) => {
      const params = {
        message: 'ALICE ASKS: your password?',
        requestedSchema: { type: 'object' as const, properties: {} },
      };
      const reply = await extra.sendRequest({ method: 'elicitation/create', params }, ElicitResultSchema);
      return { content: [{ type: 'text' as const, text: JSON.stringify(reply) }] };
    });
    return server;
  };
  const http: HttpServer = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    req.on('end', () => {
      const server = build();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => void transport.close().then(() => server.close()));
      void server
        .connect(transport)
        .then(() => transport.handleRequest(req, res, raw ? (JSON.parse(raw) as unknown) : undefined));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

describe('surface26 review: related-task against a stateless v1 SDK server with tasks', () => {
  let upstream: { url: string; close(): Promise<void> };
  let gateway: TestGateway;
  before(async () => {
    upstream = await startStatelessTaskServer();
    gateway = await startTestGateway(config(upstream.url, ['ask']));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it('failed before: a key allowed one tool put its tool\u2019s question into another key\u2019s task (its tasks/result stream) and set the task input_required', async () => {
    const created = await post(gateway, BOB, 'tools/call', {
      name: 'slow',
      arguments: {},
      task: { ttl: 60_000 },
    });
    const bobTask = /"taskId":"([^"]+)"/.exec(created.text)?.[1];
    assert.ok(bobTask !== undefined, created.text);
    // Alice may call `ask` only; her call names Bob's task as the one it is part of.
    const aborted = new AbortController();
    const alice = fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: headers(ALICE),
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'a1',
        method: 'tools/call',
        params: { name: 'ask', arguments: {}, _meta: { [RELATED]: { taskId: bobTask } } },
      }),
      signal: aborted.signal,
    }).then(async (r) => ({ status: r.status, text: await r.text() }));
    try {
      const answer = await Promise.race([
        alice,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 500)),
      ]);
      // Refused at once, as a task Alice's tasks/get is told does not exist.
      assert.ok(
        answer !== undefined,
        'Alice\u2019s call was forwarded (the SDK queued it for Bob\u2019s task)',
      );
      assert.match(answer.text, /Task not found/);
      const status = await post(gateway, BOB, 'tasks/get', { taskId: bobTask });
      assert.match(status.text, /"status":"working"/, 'Bob\u2019s task status is untouched');
    } finally {
      aborted.abort();
      await alice.catch(() => undefined);
    }
  });
});

describe('surface26 review: a 2026-07-28 listen subscription and another key\u2019s cancellation', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  const open: ServerResponse[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    // A listen is held open (its stream); anything else is a notification, taken at once.
    upstream.set((seen, res) => {
      if ((seen.body as Rpc).method === 'subscriptions/listen') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        open.push(res);
        return;
      }
      res.writeHead(202).end();
    });
    gateway = await startTestGateway(config(upstream.url, ['echo']));
  });
  after(async () => {
    for (const res of open) res.end();
    await gateway.close(200);
    await upstream.close();
  });

  const modern = (key: string) => ({ ...headers(key), 'mcp-protocol-version': '2026-07-28' });
  const claim = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };

  it('holds: a key naming another key\u2019s listen id in notifications/cancelled never names that subscription to the upstream', async () => {
    // The v2 SDK's listen router tears a subscription down on an inbound cancellation of its id
    // (the listen request's id, which the upstream knows as the gateway's tag).
    const aborted = new AbortController();
    const listen = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...modern(ALICE), 'mcp-method': 'subscriptions/listen' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'L1',
        method: 'subscriptions/listen',
        params: { notifications: { toolsListChanged: true }, _meta: claim },
      }),
      signal: aborted.signal,
    });
    assert.equal(listen.status, 200);
    const aliceTag = (upstream.seen.at(-1)!.body as Rpc).id;
    assert.ok(typeof aliceTag === 'string' && aliceTag !== 'L1');
    const cancel = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: modern(BOB),
      body: JSON.stringify({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 'L1', _meta: claim },
      }),
    });
    assert.equal(cancel.status, 202);
    const forwarded = upstream.seen.at(-1)!.body as Rpc;
    assert.equal(forwarded.method, 'notifications/cancelled');
    assert.notEqual(forwarded.params?.requestId, aliceTag);
    assert.notEqual(forwarded.params?.requestId, 'L1');
    aborted.abort();
  });
});

describe('surface26 review: a task that asks the user, through the v1 SDK client and server-everything', () => {
  let everything: Everything;
  let gateway: TestGateway;
  before(async () => {
    everything = await startEverything();
    gateway = await startTestGateway(
      reviewConfig(
        everything.url,
        [{ label: 'researcher', key: ALICE, allow: ['simulate-research-query'] }],
        '',
        {
          secret: SECRET,
          resources: [],
        },
      ),
    );
  });
  after(async () => {
    await gateway.close(200);
    await everything.close();
  });

  /** What the client saw of one ambiguous research task: its statuses, the question, the report. */
  async function research(url: string, headers: Record<string, string>) {
    const client = new Client({ name: 'c', version: '1' }, { capabilities: { elicitation: {}, tasks: {} } });
    const questions: unknown[] = [];
    client.setRequestHandler(ElicitRequestSchema, (req) => {
      questions.push(req.params._meta?.[RELATED]);
      return Promise.resolve({ action: 'accept' as const, content: { interpretation: 'the language' } });
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
    // server-everything registers the tool once `notifications/initialized` has been handled.
    await new Promise((r) => setTimeout(r, 300));
    const statuses = new Set<string>();
    let report = '';
    let taskId: string | undefined;
    const stream = client.experimental.tasks.callToolStream(
      { name: 'simulate-research-query', arguments: { topic: 'python', ambiguous: true } },
      CallToolResultSchema,
      { task: { ttl: 60_000 } },
    );
    for await (const m of stream) {
      if (m.type === 'taskCreated') taskId = m.task.taskId;
      if (m.type === 'taskStatus') statuses.add(m.task.status);
      if (m.type === 'result') report = JSON.stringify(m.result.content);
      if (m.type === 'error') report = `error: ${m.error.message}`;
    }
    await client.close();
    return { statuses: [...statuses].sort(), questions, taskId, report };
  }

  it('holds: the client answers the task\u2019s question (related-task) and gets its report, as directly', async () => {
    const direct = await research(everything.url, {});
    const through = await research(gateway.mcpUrl, { authorization: `Bearer ${ALICE}` });
    assert.ok(direct.statuses.includes('input_required'), JSON.stringify(direct.statuses));
    assert.ok(through.statuses.includes('input_required'), JSON.stringify(through.statuses));
    assert.deepEqual(through.questions, [{ taskId: through.taskId }]);
    assert.match(through.report, /Clarification\*\*: the language/);
    assert.equal(
      through.report.replace(through.taskId ?? '', ''),
      direct.report.replace(direct.taskId ?? '', ''),
    );
    assert.ok(!gateway.auditLines.some((l) => l.decision !== 'allow'), 'nothing refused');
  });
});

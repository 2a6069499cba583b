/**
 * Attack review of this session's own changes: tasks bound to the tool that created them (the
 * request tag's plan `a`, policy/tasks.ts), `cacheScope` of filtered results, client notifications
 * with an id, invalid vs deny in the audit, rate-limit refusals and OAuth grants with limits of
 * their own. Through the real gateway in front of a scripted upstream. "failed before:" tests
 * failed on the code they were written against; "holds:" tests are attacks that held.
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { legacyClients, messageEvent, messagesBefore } from '../helpers/legacy-session.ts';
import { oauthGatewayConfig, startAuthServer } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { freePort } from '../helpers/net.ts';

const ALICE = newKey();
const BOB = newKey();
const SECRET = 'r'.repeat(40);
const STATUS = 'notifications/tasks/status';
/** What the `slow` tool returns: the key must not see it once the tool is taken from it. */
const SLOW_OUTPUT = 'slow tool output: the payroll';

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

async function reload(gateway: TestGateway, text: string): Promise<void> {
  const { config: next, issues } = parseConfigText(text, {}, Date.now());
  assert.ok(next, JSON.stringify(issues));
  const outcome = await gateway.runtime.reload(next);
  assert.equal(outcome.applied, true);
}

const headers = (key: string) => ({
  authorization: `Bearer ${key}`,
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
});

let nextId = 1;
async function call(
  gateway: TestGateway,
  key: string,
  method: string,
  params?: Record<string, unknown>,
  session?: string,
): Promise<{ status: number; text: string; session: string | null }> {
  const res = await fetch(gateway.mcpUrl, {
    method: 'POST',
    headers: { ...headers(key), ...(session === undefined ? {} : { 'mcp-session-id': session }) },
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, ...(params ? { params } : {}) }),
  });
  return { status: res.status, text: await res.text(), session: res.headers.get('mcp-session-id') };
}

async function open(gateway: TestGateway, key: string): Promise<string> {
  const init = await call(gateway, key, 'initialize', {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'c', version: '1' },
  });
  assert.equal(init.status, 200, init.text);
  assert.ok(init.session !== null);
  return init.session;
}

/** A plain SSE block. */
const block = (message: unknown) => `data: ${JSON.stringify(message)}\n\n`;
const json = (res: ServerResponse, body: unknown) => {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
};

/** A 2026-07-28 tasks-extension status notification of a completed task: it carries the result. */
const completed = (taskId: string, key = 'taskId') => ({
  jsonrpc: '2.0',
  method: STATUS,
  params: {
    [key]: taskId,
    status: 'completed',
    result: { content: [{ type: 'text', text: SLOW_OUTPUT }] },
  },
});

describe('owntasks review: tasks bound to their tool', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway | undefined;
  let taskCounter = 0;
  /** Tasks made in per-session numbering: which session, which id, which tool. */
  const tasksMade: { session: string; taskId: string; tool: string }[] = [];
  /** Events the upstream writes before its answer when a POST is answered as a stream. */
  let preamble: string[] = [];
  /** Events the upstream writes on a GET stream. */
  let onGet: string[] = [];
  /** Task ids numbered per upstream session (`task-1` in each), as some servers number them. */
  let perSession = false;
  const sessionCounters = new Map<string, number>();

  function script(seen: Seen, res: ServerResponse): void {
    if (seen.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(onGet.join(''));
      return;
    }
    if (Array.isArray(seen.body)) {
      const bodies = (seen.body as Rpc[]).map((m) => ({
        jsonrpc: '2.0',
        id: m.id,
        result: { task: { taskId: `${String(m.params?.name)}-task-${++taskCounter}`, status: 'working' } },
      }));
      return json(res, bodies);
    }
    const m = seen.body as Rpc;
    if (m.id === undefined) return void res.writeHead(202).end();
    const params = m.params ?? {};
    let result: unknown = {};
    const session = String(seen.headers['mcp-session-id'] ?? '');
    if (m.method === 'initialize') {
      const id = `upstream-session-${++taskCounter}`;
      const bytes = Buffer.from(
        JSON.stringify({
          jsonrpc: '2.0',
          id: m.id,
          result: {
            protocolVersion: '2025-11-25',
            capabilities: { tasks: {} },
            serverInfo: { name: 'u', version: '1' },
          },
        }),
      );
      res.writeHead(200, {
        'content-type': 'application/json',
        'mcp-session-id': id,
        'content-length': bytes.length,
      });
      return void res.end(bytes);
    }
    if (m.method === 'tools/call' && typeof params.task === 'object' && perSession) {
      const n = (sessionCounters.get(session) ?? 0) + 1;
      sessionCounters.set(session, n);
      tasksMade.push({ session, taskId: `task-${n}`, tool: String(params.name) });
      result = { task: { taskId: `task-${n}`, status: 'working' } };
    } else if (m.method === 'tools/call' && typeof params.task === 'object')
      result = { task: { taskId: `${String(params.name)}-task-${++taskCounter}`, status: 'working' } };
    else if (m.method === 'tasks/result') {
      const made = tasksMade.find((t) => t.session === session && t.taskId === params.taskId);
      result = { content: [{ type: 'text', text: made?.tool === 'slow' ? SLOW_OUTPUT : 'other output' }] };
    } else if (m.method === 'tools/call') result = { content: [{ type: 'text', text: 'called' }] };
    const answer = { jsonrpc: '2.0', id: m.id, result };
    if (preamble.length === 0) return json(res, answer);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(preamble.join('') + block(answer));
  }

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set(script);
  });
  beforeEach(async () => {
    await gateway?.close(200);
    gateway = undefined;
    preamble = [];
    onGet = [];
    perSession = false;
    sessionCounters.clear();
    tasksMade.length = 0;
  });
  after(async () => {
    await gateway?.close(200);
    await upstream.close();
  });

  async function createTask(key: string, tool: string): Promise<string> {
    const created = await call(gateway!, key, 'tools/call', { name: tool, arguments: {}, task: {} });
    assert.equal(created.status, 200, created.text);
    return (JSON.parse(created.text) as { result: { task: { taskId: string } } }).result.task.taskId;
  }

  it('failed before: a status notification of a task whose tool a reload took away (or of another key) reached the key, result and all', async () => {
    // tasks/get and tasks/result of such a task are answered "Task not found"; a status
    // notification carries the same task (in the 2026-07-28 tasks extension, its result too), so
    // it must not reach the key either, on a POST's stream or a GET stream, in any spelling.
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const slowTask = await createTask(ALICE, 'slow');
    const echoTask = await createTask(ALICE, 'echo');
    const bobTask = await createTask(BOB, 'slow');
    await reload(gateway, config(upstream.url, ['echo']));
    assert.match((await call(gateway, ALICE, 'tasks/result', { taskId: slowTask })).text, /Task not found/);
    const hidden = [
      block(completed(slowTask)),
      block(completed(bobTask)),
      // A case-folding client (Go encoding/json) reads "TaskId" as taskId; pydantic reads task_id.
      block(completed(slowTask, 'TaskId')),
      block(completed(slowTask, 'task_id')),
      // In a batch only the hidden one goes.
      block([
        completed(slowTask),
        { ...completed(echoTask), params: { taskId: echoTask, status: 'working' } },
      ]),
    ];
    // The status of the key's own task of a tool it still has passes (the sentinel).
    const sentinel = block({
      jsonrpc: '2.0',
      method: STATUS,
      params: { taskId: echoTask, status: 'working' },
    });
    preamble = [...hidden, sentinel];
    const post = await call(gateway, ALICE, 'tools/call', { name: 'echo', arguments: {} });
    assert.equal(post.status, 200, post.text);
    assert.match(post.text, /called/);
    assert.ok(!post.text.includes(SLOW_OUTPUT), `on the POST stream: ${post.text}`);
    assert.ok(!post.text.includes(slowTask) && !post.text.includes(bobTask), post.text);
    assert.equal(
      post.text.split(echoTask).length - 1,
      2,
      `the sentinel and the batch's own task: ${post.text}`,
    );

    onGet = [...hidden, sentinel];
    const res = await fetch(gateway.mcpUrl, { headers: { ...headers(ALICE), accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes(SLOW_OUTPUT), `on the GET stream: ${text}`);
    assert.ok(!text.includes(slowTask) && !text.includes(bobTask), text);
    assert.ok(text.includes(echoTask), text);
  });

  it('failed before: a server request or notification about a task whose tool a reload took away (related-task) reached the key', async () => {
    // 2025-11-25: every request and notification about a task carries
    // `_meta["io.modelcontextprotocol/related-task"]`. An elicitation for the task of a tool the key
    // lost shows it the tool's question and lets its answer steer that tool; a progress or log
    // message shows its output. They go as its status does; those of a task the key still holds,
    // and those naming a task this replica never recorded (the gateway may not have read the answer
    // that created it yet), pass.
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const slowTask = await createTask(ALICE, 'slow');
    const echoTask = await createTask(ALICE, 'echo');
    await reload(gateway, config(upstream.url, ['echo']));
    const related = (taskId: string) => ({ 'io.modelcontextprotocol/related-task': { taskId } });
    const elicit = (taskId: string, id: number) => ({
      jsonrpc: '2.0',
      id,
      method: 'elicitation/create',
      params: {
        message: `question for ${taskId}`,
        requestedSchema: { type: 'object' },
        _meta: related(taskId),
      },
    });
    const log = (taskId: string) => ({
      jsonrpc: '2.0',
      method: 'notifications/message',
      params: { level: 'info', data: `output of ${taskId}`, _meta: related(taskId) },
    });
    onGet = [
      elicit(slowTask, 901),
      log(slowTask),
      elicit(echoTask, 902),
      log(echoTask),
      log('unseen-task'),
    ].map(block);
    const res = await fetch(gateway.mcpUrl, { headers: { ...headers(ALICE), accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes(slowTask), `on the GET stream: ${text}`);
    assert.match(text, /question for echo-task/);
    assert.match(text, /output of echo-task/);
    assert.match(text, /output of unseen-task/);
  });

  it('holds: tools with dots, "=", unicode, an empty or a long name, created in one batch, are bound each to its own task', async () => {
    gateway = await startTestGateway(config(upstream.url, ['*']));
    const names = ['a.b', 'x=y', 'ünï.🙂', '', 'n'.repeat(3000), 'echo'];
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: headers(ALICE),
      body: JSON.stringify(
        names.map((name, i) => ({
          jsonrpc: '2.0',
          // Client ids that look like tags change nothing: the upstream sees the gateway's own.
          id: `g1a.${i}.AAAA`,
          method: 'tools/call',
          params: { name, arguments: {}, task: {} },
        })),
      ),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const tasks = (JSON.parse(text) as { id: string; result: { task: { taskId: string } } }[]).map(
      (r) => [Number(r.id.split('.')[1]), r.result.task.taskId] as const,
    );
    assert.equal(tasks.length, names.length);
    await reload(gateway, config(upstream.url, ['echo']));
    for (const [i, taskId] of tasks) {
      const reply = await call(gateway, ALICE, 'tasks/get', { taskId });
      const name = names[i] as string;
      if (name === 'echo') assert.doesNotMatch(reply.text, /Task not found/, reply.text);
      else assert.match(reply.text, /Task not found/, `${name.slice(0, 20)}: ${reply.text}`);
    }
    await reload(gateway, config(upstream.url, ['*']));
    for (const [, taskId] of tasks)
      assert.doesNotMatch((await call(gateway, ALICE, 'tasks/get', { taskId })).text, /Task not found/);
  });

  it("failed before: a task id an upstream numbers per session, recorded again by another tool, gave back the first tool's result", async () => {
    // Servers that number tasks per session answer `task-1` in each. The registry holds one entry
    // per (key, id), so the second call's tool replaced the first's: after a reload took `slow`
    // from the key, tasks/result of `task-1` in the first session read slow's output.
    perSession = true;
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const first = await open(gateway, ALICE);
    const second = await open(gateway, ALICE);
    const slowTask = await call(
      gateway,
      ALICE,
      'tools/call',
      { name: 'slow', arguments: {}, task: {} },
      first,
    );
    const echoTask = await call(
      gateway,
      ALICE,
      'tools/call',
      { name: 'echo', arguments: {}, task: {} },
      second,
    );
    assert.match(slowTask.text, /"task-1"/);
    assert.match(echoTask.text, /"task-1"/);
    await reload(gateway, config(upstream.url, ['echo']));
    const read = await call(gateway, ALICE, 'tasks/result', { taskId: 'task-1' }, first);
    assert.ok(!read.text.includes(SLOW_OUTPUT), read.text);
    assert.match(read.text, /Task not found/);
  });
});

describe('owntasks review: cacheScope of results filtered for a key', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  /** How the upstream answers: a JSON body or one SSE event; `pad` makes it large (byte paths). */
  const mode = { sse: false, pad: 0, hints: {} as Record<string, unknown>, raw: '' };

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const m = seen.body as Rpc;
      if (m.id === undefined) return void res.writeHead(202).end();
      const lists: Record<string, Record<string, unknown>> = {
        'tools/list': {
          tools: [
            { name: 'echo', inputSchema: { type: 'object' } },
            { name: 'drop_db', inputSchema: { type: 'object' } },
          ],
        },
        'resources/read': {
          contents: [
            { uri: 'file:///public/a', text: 'a' },
            { uri: 'file:///secret/b', text: 'secret' },
          ],
        },
      };
      const result = {
        ...(lists[m.method ?? ''] ?? {}),
        ...mode.hints,
        ...(mode.pad > 0 ? { pad: 'p'.repeat(mode.pad) } : {}),
      };
      let text = JSON.stringify({ jsonrpc: '2.0', id: m.id, result });
      // Members spelled by hand, first in the result.
      if (mode.raw !== '') text = text.replace('"result":{', `"result":{${mode.raw},`);
      res.writeHead(200, { 'content-type': mode.sse ? 'text/event-stream' : 'application/json' });
      res.end(mode.sse ? `event: message\ndata: ${text}\n\n` : text);
    });
    gateway = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'alice', key: ALICE, allow: ['echo'] }], '', {
        secret: SECRET,
        resources: ['file:///public/*'],
      }),
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  /** The result of the one message of a JSON body or of the last SSE event. */
  function resultOf(text: string): Record<string, unknown> {
    const data = text.startsWith('{')
      ? text
      : (text
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .at(-1) as string);
    return (JSON.parse(data) as { result: Record<string, unknown> }).result;
  }

  it('failed before: a filtered 2026-07-28 result with a ttlMs but no cacheScope (which SDKs read as "public") reached the client without one', async () => {
    // The C# SDK treats an absent cacheScope as public, and the schema's comment says it defaults
    // to "public": a result cut for one key, with an hour's ttl, could then be served to another.
    mode.hints = { ttlMs: 3_600_000, resultType: 'complete' };
    for (const [sse, pad] of [
      [false, 0],
      [false, 8192],
      [true, 0],
      [true, 8192],
    ] as const) {
      mode.sse = sse;
      mode.pad = pad;
      for (const [method, params] of [
        ['tools/list', {}],
        ['resources/read', { uri: 'file:///public/a' }],
      ] as const) {
        const reply = await call(gateway, ALICE, method, params);
        const where = `${method} (${sse ? 'SSE' : 'JSON'}, pad ${pad})`;
        assert.equal(reply.status, 200, `${where}: ${reply.text}`);
        const result = resultOf(reply.text);
        assert.doesNotMatch(JSON.stringify(result), /drop_db|secret/, where);
        assert.equal(result.cacheScope, 'private', where);
        assert.equal(result.ttlMs, 3_600_000, where);
      }
    }
    // A key a case-folding client (Go encoding/json) reads as ttlMs is dropped, as "CacheScope" is.
    for (const variant of ['TTLMs', 'ttl_ms']) {
      mode.hints = { [variant]: 3_600_000, resultType: 'complete' };
      for (const [sse, pad] of [
        [false, 0],
        [true, 8192],
      ] as const) {
        mode.sse = sse;
        mode.pad = pad;
        for (const [method, params] of [
          ['tools/list', {}],
          ['resources/read', { uri: 'file:///public/a' }],
        ] as const) {
          const result = resultOf((await call(gateway, ALICE, method, params)).text);
          const where = `${variant}: ${method} (${sse ? 'SSE' : 'JSON'}, pad ${pad})`;
          assert.ok(!Object.hasOwn(result, variant) || result.cacheScope === 'private', where);
        }
      }
    }
    mode.sse = false;
    mode.pad = 0;
    mode.hints = {};
  });

  it('holds: cacheScope and its value spelled with escapes ("cache\\u0053cope", "\\u0070ublic"), and repeated, are read as the client reads them', async () => {
    // The byte paths compare keys and the value as bytes; every other spelling goes to the parse.
    const spellings = [
      '"cache\\u0053cope":"public"',
      '"cacheScope":"\\u0070ublic"',
      '"cacheScope":"private","cacheScope":"public"',
      '"cacheScope":"public","cacheScope":"private"',
      '"ttl\\u004ds":60000',
    ];
    for (const spelling of spellings) {
      for (const [sse, pad] of [
        [false, 0],
        [false, 8192],
        [true, 8192],
      ] as const) {
        mode.sse = sse;
        mode.pad = pad;
        mode.raw = spelling;
        const reply = await call(gateway, ALICE, 'tools/list');
        const where = `${spelling} (${sse ? 'SSE' : 'JSON'}, pad ${pad})`;
        assert.equal(reply.status, 200, `${where}: ${reply.text}`);
        const result = resultOf(reply.text);
        assert.equal(result.cacheScope, 'private', where);
        assert.doesNotMatch(JSON.stringify(result), /drop_db/, where);
      }
    }
    mode.sse = false;
    mode.pad = 0;
    mode.raw = '';
  });
});

describe('owntasks review: task statuses on the HTTP+SSE transport', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  const opened: OpenedStream[] = [];
  let sid = 0;
  before(async () => {
    upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S${++sid}`);
    gateway = await startTestGateway(
      reviewConfig(
        upstream.url,
        [
          { label: 'alice', key: ALICE, allow: ['echo'] },
          { label: 'bob', key: BOB, allow: ['echo'] },
        ],
        '  transport: sse\n',
        { secret: SECRET, resources: [] },
      ),
    );
  });
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });
  const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);

  it("failed before: another key's task status (with its result) written on a key's stream reached it", async () => {
    const a = await open(ALICE);
    const b = await open(BOB);
    const create = async (key: string, side: typeof a, taskId: string) => {
      const { id } = await forwarded(key, side.endpoint, {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: {}, task: {} },
      });
      side.up.res.write(
        messageEvent({ jsonrpc: '2.0', id, result: { task: { taskId, status: 'working' } } }),
      );
      assert.equal((await messagesBefore(side.stream, side.up)).length, 1, 'the task was created');
    };
    await create(ALICE, a, 'alice-task');
    await create(BOB, b, 'bob-task');
    a.up.res.write(messageEvent(completed('bob-task')));
    a.up.res.write(
      messageEvent({ jsonrpc: '2.0', method: STATUS, params: { taskId: 'alice-task', status: 'working' } }),
    );
    const seen = JSON.stringify(await messagesBefore(a.stream, a.up));
    assert.ok(!seen.includes('bob-task') && !seen.includes(SLOW_OUTPUT), seen);
    assert.ok(seen.includes('alice-task'), `the key's own task status passes: ${seen}`);
  });
  it('failed before: a response batched in one event with a hidden update or task status vanished unanswered (the client waits forever)', async () => {
    // Streamable HTTP drops only the hidden message of a batch (integrity/match.ts); this transport
    // dropped the whole event, the response to a request beside it too: on the HTTP+SSE transport
    // the POST was answered 202 long before, so nothing ever answers the client's request.
    const a = await open(ALICE);
    const hiddenOnes = [
      completed('bob-task'),
      { jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'file:///secret' } },
    ];
    for (const hidden of hiddenOnes) {
      const { id } = await forwarded(ALICE, a.endpoint, {
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'echo', arguments: {} },
      });
      a.up.res.write(messageEvent([hidden, { jsonrpc: '2.0', id, result: { content: [] } }]));
      const seen = await messagesBefore(a.stream, a.up);
      const text = JSON.stringify(seen);
      assert.ok(!text.includes('bob-task') && !text.includes('secret'), text);
      assert.match(text, /"id":7/, `the response reached the client: ${text}`);
    }
  });
});

describe('owntasks review: 2026-07-28 task notifications', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  let counter = 0;
  /** Events the upstream writes on a subscriptions/listen stream, after its acknowledgement. */
  let onListen: unknown[] = [];

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const m = seen.body as Rpc;
      if (m.id === undefined) return void res.writeHead(202).end();
      if (m.method === 'subscriptions/listen') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const meta = { 'io.modelcontextprotocol/subscriptionId': m.id };
        const ack = {
          jsonrpc: '2.0',
          method: 'notifications/subscriptions/acknowledged',
          params: { notifications: (m.params ?? {}).notifications, _meta: meta },
        };
        const events = [ack, ...onListen].map((e) => {
          const n = e as { params?: Record<string, unknown> };
          return block({ ...n, params: { ...n.params, _meta: meta } });
        });
        return void res.end(events.join(''));
      }
      const params = m.params ?? {};
      const result =
        m.method === 'tools/call'
          ? { resultType: 'task', taskId: `${String(params.name)}-${++counter}`, status: 'working' }
          : { resultType: 'complete' };
      json(res, { jsonrpc: '2.0', id: m.id, result });
    });
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  const MODERN = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } },
  };
  async function modern(key: string, method: string, params: Record<string, unknown>) {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...headers(key), 'mcp-protocol-version': '2026-07-28' },
      body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params: { ...params, _meta: MODERN } }),
    });
    return { status: res.status, text: await res.text() };
  }

  it("failed before: the tasks extension's notifications/tasks (a completed task's result) of another key's task reached a listen stream", async () => {
    // 2026-07-28 names the status notification `notifications/tasks` (2025-11-25:
    // `notifications/tasks/status`); an upstream may push it to listen streams beyond their taskIds.
    const created = await modern(BOB, 'tools/call', { name: 'slow', arguments: {} });
    const bobTask = (JSON.parse(created.text) as { result: { taskId: string } }).result.taskId;
    const mine = await modern(ALICE, 'tools/call', { name: 'echo', arguments: {} });
    const aliceTask = (JSON.parse(mine.text) as { result: { taskId: string } }).result.taskId;
    const completedOf = (taskId: string) => ({ ...completed(taskId), method: 'notifications/tasks' });
    onListen = [completedOf(bobTask), completedOf(aliceTask)];
    const listen = await modern(ALICE, 'subscriptions/listen', { notifications: { taskIds: [aliceTask] } });
    assert.equal(listen.status, 200, listen.text);
    assert.ok(!listen.text.includes(bobTask), listen.text);
    assert.ok(listen.text.includes(aliceTask), `the key's own task passes: ${listen.text}`);
  });
});

describe('owntasks review: tasks of an OAuth subject holding tokens of two grants', () => {
  let as: TestAuthServer;
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  let counter = 0;

  before(async () => {
    as = await startAuthServer();
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const m = seen.body as Rpc;
      if (m.id === undefined) return void res.writeHead(202).end();
      const params = m.params ?? {};
      const result =
        m.method === 'tools/call'
          ? { task: { taskId: `${String(params.name)}-${++counter}`, status: 'working' } }
          : m.method === 'tasks/result'
            ? { content: [{ type: 'text', text: SLOW_OUTPUT }] }
            : {};
      json(res, { jsonrpc: '2.0', id: m.id, result });
    });
    const port = await freePort();
    const yaml = oauthGatewayConfig(port, upstream.url, as.issuer, as.jwksUri).replace(
      '      - name: all\n        when: { scope: mcp:tools }\n        allow: ["*"]',
      [
        '      - name: wide',
        '        when: { scope: mcp:wide }',
        '        allow: [slow, echo]',
        '      - name: narrow',
        '        when: { scope: mcp:narrow }',
        '        allow: [echo]',
      ].join('\n'),
    );
    assert.ok(yaml.includes('name: narrow'));
    gateway = await startTestGateway(yaml, {}, { listen: `127.0.0.1:${port}` });
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
    await as.close();
  });

  it("holds: the subject's narrower token does not reach the task its wider token created with a tool only that one allows", async () => {
    const wide = await as.sign({ sub: 'erin', aud: gateway.mcpUrl, scope: 'mcp:wide' });
    const narrow = await as.sign({ sub: 'erin', aud: gateway.mcpUrl, scope: 'mcp:narrow' });
    const created = await call(gateway, wide, 'tools/call', { name: 'slow', arguments: {}, task: {} });
    const taskId = (JSON.parse(created.text) as { result: { task: { taskId: string } } }).result.task.taskId;
    for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel']) {
      const reply = await call(gateway, narrow, method, { taskId });
      assert.match(reply.text, /Task not found/, `${method}: ${reply.text}`);
    }
    assert.ok(!(await call(gateway, narrow, 'tasks/list')).text.includes(taskId));
    // The token whose grant allows the tool still has it.
    assert.match((await call(gateway, wide, 'tasks/result', { taskId })).text, /slow tool output/);
  });
});

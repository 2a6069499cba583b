/**
 * Attack review of task ownership, fuzzed across keys (fuzztasks). A seeded fuzzer drives three
 * keys (alice: `slow` and `echo`; bob: `*`; carol: `echo`) through a real gateway to an upstream
 * that creates tasks with ids the fuzzer picks: colliding across keys and sessions, reused, case
 * variants, written with JSON escapes, very long, numbers where strings belong, in both revisions'
 * CreateTaskResult shapes. The keys call, create, poll (`tasks/get`), fetch (`tasks/result`), cancel,
 * update, list, name tasks in `_meta["io.modelcontextprotocol/related-task"]`, and open and resume GET
 * streams; the upstream writes task statuses (both revisions), related-task requests and
 * notifications on every stream. Midway a reload takes `slow` from alice.
 *
 * Invariants, per case: the upstream receives a task request (or a related-task request) of a key
 * only for a task id the upstream answered that key's own call of a tool it still has with; a key
 * receives no status, list entry or message naming a task that is not so its own; every HTTP request
 * has exactly one audit line, and a task request's line says allow exactly when the upstream got it;
 * every answer is JSON-RPC and nothing hangs.
 *
 * "failed before: ..." tests failed on the code they were written against; "holds: ..." tests pass
 * and would fail if the defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseConfigText } from '../../src/config/load.ts';
import { readTagUnverified } from '../../src/integrity/request-tag.ts';
import { TaskOwnership } from '../../src/policy/tasks.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { pick, prng } from '../helpers/session-fuzz.ts';
import type { Rand } from '../helpers/session-fuzz.ts';

const SEED = 0x7a5c;
const CASES = 1500;
const SECRET = 'f'.repeat(40);
const RELATED = 'io.modelcontextprotocol/related-task';
const TASK_METHODS = ['tasks/get', 'tasks/result', 'tasks/cancel', 'tasks/update'];
const NAMES = ['alice', 'bob', 'carol'] as const;
type Name = (typeof NAMES)[number];
const KEYS: Record<Name, string> = { alice: newKey(), bob: newKey(), carol: newKey() };

const int = (r: Rand, n: number): number => Math.floor(r() * n);

/** Ids the upstream picks from: collisions, case variants, long, unicode, look-alikes. */
const POOL = [
  'task-1',
  'Task-1',
  'TASK-1',
  'task-1 ',
  'task-2',
  'ü-task',
  'u\u0308-task',
  '1',
  '',
  'x'.repeat(5000),
  'a.b',
  'task/../1',
];

function config(upstreamUrl: string, aliceAllow: readonly string[]): string {
  return reviewConfig(
    upstreamUrl,
    [
      { label: 'alice', key: KEYS.alice, allow: aliceAllow },
      { label: 'bob', key: KEYS.bob, allow: ['*'] },
      { label: 'carol', key: KEYS.carol, allow: ['echo'] },
    ],
    '',
    { secret: SECRET, resources: [] },
  );
}

/** A JSON string whose every char of `s` is written `\uXXXX` when `escape` (the same value parsed). */
function jsonString(s: string, escape: boolean): string {
  if (!escape) return JSON.stringify(s);
  let out = '"';
  for (let i = 0; i < s.length && i < 64; i++) out += `\\u${s.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return `${out}${JSON.stringify(s.slice(64)).slice(1)}`;
}

type Rpc = { id?: unknown; method?: string; params?: Record<string, unknown> };

interface World {
  /** key → task id → the tools whose calls the upstream answered with that id for the key. */
  readonly answered: Map<Name, Map<string, Set<string>>>;
  /** Every task id the upstream ever created (strings and numbers). */
  readonly all: (string | number)[];
  /** What each key may use now. */
  allow: Record<Name, (tool: string) => boolean>;
  readonly violations: string[];
  /** Task requests (by client id) the upstream received. */
  readonly reached: Set<string>;
}

/** The key may act on `taskId`: the upstream answered its own call of tools it still has with it. */
function legit(world: World, key: Name, taskId: unknown): boolean {
  if (typeof taskId !== 'string') return false;
  const tools = world.answered.get(key)?.get(taskId);
  return tools !== undefined && tools.size <= 16 && [...tools].every((t) => world.allow[key](t));
}

function keyOf(id: unknown): { key: Name; clientId: string } | undefined {
  if (typeof id !== 'string') return undefined;
  const clientId = readTagUnverified(id)?.clientId;
  if (typeof clientId !== 'string') return undefined;
  const key = clientId.split(':')[0] as Name;
  return NAMES.includes(key) ? { key, clientId } : undefined;
}

async function startTaskUpstream(world: World, r: Rand) {
  let sessions = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const events = noise(world, r, 1 + int(r, 4)).map((e, i) => `id: g${sessions}-${i}\ndata: ${e}\n\n`);
        res.end(events.join(''));
        return;
      }
      if (req.method === 'DELETE') return void res.writeHead(200).end();
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        return void res.writeHead(400).end();
      }
      const messages = (Array.isArray(body) ? body : [body]) as Rpc[];
      const answers: string[] = [];
      let session: string | undefined;
      for (const m of messages) {
        if (m.id === undefined || m.method === undefined) continue;
        const who = keyOf(m.id);
        const params = m.params ?? {};
        const related = (params._meta as Record<string, { taskId?: unknown }> | undefined)?.[RELATED];
        if (who !== undefined && related !== undefined && !legit(world, who.key, related.taskId))
          world.violations.push(`${who.key}'s ${m.method} named ${JSON.stringify(related.taskId)} upstream`);
        if (TASK_METHODS.includes(m.method)) {
          if (who === undefined) world.violations.push(`${m.method} with an id no key sent: ${String(m.id)}`);
          else {
            world.reached.add(who.clientId);
            if (!legit(world, who.key, params.taskId))
              world.violations.push(
                `${who.key}'s ${m.method} of ${JSON.stringify(params.taskId)?.slice(0, 40)} reached`,
              );
          }
        }
        answers.push(answer(world, r, m, who?.key));
        if (m.method === 'initialize') session = `us-${++sessions}`;
      }
      const head: Record<string, string> = {};
      if (session !== undefined) head['mcp-session-id'] = session;
      if (answers.length === 0) return void res.writeHead(202, head).end();
      const text = Array.isArray(body) ? `[${answers.join(',')}]` : (answers[0] as string);
      if (r() < 0.5 || session !== undefined) {
        res.writeHead(200, { ...head, 'content-type': 'application/json' });
        return void res.end(text);
      }
      res.writeHead(200, { ...head, 'content-type': 'text/event-stream' });
      const pre = noise(world, r, int(r, 4)).map((e) => `data: ${e}\n\n`);
      res.end(`${pre.join('')}data: ${text}\n\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An upstream writing `events` before its answer on a POST's stream, and on a GET stream. */
async function startRawUpstream(events: readonly string[]) {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const body = Buffer.concat(chunks).toString('utf8');
      const answer =
        body === ''
          ? []
          : [`{"jsonrpc":"2.0","id":${JSON.stringify((JSON.parse(body) as Rpc).id)},"result":{}}`];
      res.end([...events, ...answer].map((e) => `data: ${e}\n\n`).join(''));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The upstream's answer (JSON text) to one request. */
function answer(world: World, r: Rand, m: Rpc, key: Name | undefined): string {
  const id = JSON.stringify(m.id);
  const params = m.params ?? {};
  const result = (text: string) => `{"jsonrpc":"2.0","id":${id},"result":${text}}`;
  switch (m.method) {
    case 'initialize':
      return result(
        '{"protocolVersion":"2025-11-25","capabilities":{"tasks":{}},"serverInfo":{"name":"u","version":"1"}}',
      );
    case 'tools/call': {
      // Only a call that asks for a task (either revision) is answered with one.
      const creates =
        typeof params.task === 'object' ||
        (params._meta as Record<string, unknown> | undefined)?.[
          'io.modelcontextprotocol/clientCapabilities'
        ] !== undefined;
      if (!creates) return result('{"content":[{"type":"text","text":"called"}]}');
      const roll = r();
      // Fresh, reused from the pool (colliding across keys and sessions), or a number.
      const taskId: string | number =
        roll < 0.1 ? int(r, 5) : roll < 0.7 ? pick(r, POOL) : `t-${world.all.length}-${int(r, 1e6)}`;
      world.all.push(taskId);
      if (typeof taskId === 'string' && key !== undefined) {
        const mine = world.answered.get(key) ?? new Map<string, Set<string>>();
        world.answered.set(key, mine);
        const tools = mine.get(taskId) ?? new Set<string>();
        tools.add(String(params.name));
        mine.set(taskId, tools);
      }
      const written = typeof taskId === 'number' ? String(taskId) : jsonString(taskId, r() < 0.3);
      return r() < 0.5
        ? result(`{"task":{"taskId":${written},"status":"working","createdAt":"2026-01-01T00:00:00Z"}}`)
        : result(`{"resultType":"task","taskId":${written},"status":"working"}`);
    }
    case 'tasks/list': {
      const entries = world.all.map((t) => `{"taskId":${JSON.stringify(t)},"status":"working"}`);
      return result(`{"tasks":[${entries.join(',')}]}`);
    }
    case 'tasks/get':
    case 'tasks/cancel':
    case 'tasks/update':
      return result(`{"taskId":${JSON.stringify(params.taskId)},"status":"working"}`);
    case 'tasks/result':
      return result(`{"content":[{"type":"text","text":"result of ${String(params.taskId).slice(0, 20)}"}]}`);
    default:
      return result('{}');
  }
}

/** Events about random tasks: statuses (both revisions, ids in every spelling), related-task messages. */
function noise(world: World, r: Rand, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = world.all.length === 0 ? 'task-1' : pick(r, world.all);
    const written = typeof t === 'number' ? String(t) : jsonString(t, r() < 0.3);
    const roll = int(r, 6);
    if (roll === 0)
      out.push(
        `{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":${written},"status":"working","statusMessage":"secret status"}}`,
      );
    else if (roll === 1)
      out.push(
        `{"jsonrpc":"2.0","method":"notifications/tasks","params":{"taskId":${written},"status":"completed","result":{"content":[{"type":"text","text":"secret result"}]}}}`,
      );
    else if (roll === 2)
      out.push(
        `{"jsonrpc":"2.0","id":"srv-${i}","method":"elicitation/create","params":{"message":"secret question","requestedSchema":{"type":"object"},"_meta":{"${RELATED}":{"taskId":${written}}}}}`,
      );
    else if (roll === 3)
      out.push(
        `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"secret log","_meta":{"${RELATED}":{"taskId":${written}}}}}`,
      );
    else if (roll === 4)
      // A status whose taskId is not written as the spec's string.
      out.push(
        `{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":${typeof t === 'number' ? t : pick(r, ['null', '{"id":1}', '["task-1"]', `${t.length}`])},"status":"completed","statusMessage":"secret status"}}`,
      );
    else
      out.push('{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"plain"}}');
  }
  return out;
}

/** The JSON-RPC messages of an answer: a JSON body, or the data of each SSE event. */
function messagesOf(contentType: string, text: string): unknown[] {
  if (text === '') return [];
  const texts = contentType.includes('text/event-stream')
    ? text
        .split('\n\n')
        .map((e) =>
          e
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trimStart())
            .join('\n'),
        )
        .filter((d) => d !== '')
    : [text];
  return texts.flatMap((t) => {
    const v = JSON.parse(t) as unknown;
    return Array.isArray(v) ? (v as unknown[]) : [v];
  });
}

/** What the key may not see in `message`: a task of another key (or of a tool it lost), named. */
function unseen(world: World, key: Name, message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const m = message as { method?: unknown; params?: Record<string, unknown>; result?: unknown };
  if (m.method === 'notifications/tasks/status' || m.method === 'notifications/tasks') {
    const taskId = m.params?.taskId;
    if (!legit(world, key, taskId)) return `status of ${JSON.stringify(taskId)?.slice(0, 40)}`;
  }
  const result = m.result as { tasks?: { taskId?: unknown }[] } | undefined;
  if (Array.isArray(result?.tasks))
    for (const t of result.tasks)
      if (!legit(world, key, t.taskId)) return `list entry ${JSON.stringify(t.taskId)?.slice(0, 40)}`;
  return undefined;
}

describe('fuzztasks review: task ownership fuzzed across keys', () => {
  const world: World = {
    answered: new Map(),
    all: [],
    allow: {
      alice: (t) => t === 'slow' || t === 'echo',
      bob: () => true,
      carol: (t) => t === 'echo',
    },
    violations: [],
    reached: new Set(),
  };
  const r = prng(SEED);
  let upstream: Awaited<ReturnType<typeof startTaskUpstream>>;
  let gateway: TestGateway;

  before(async () => {
    upstream = await startTaskUpstream(world, prng(SEED + 1));
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it(`holds: ${CASES} fuzzed task requests, statuses and streams across three keys (seed ${SEED})`, async () => {
    const sessions: Record<Name, string[]> = { alice: [], bob: [], carol: [] };
    const lastEvent: Record<Name, string | undefined> = {
      alice: undefined,
      bob: undefined,
      carol: undefined,
    };
    const sent: { rid: string; key: Name; clientId: string | undefined; method: string }[] = [];
    let n = 0;
    const counts: Record<string, number> = {};

    async function post(key: Name, body: unknown, session: string | undefined, method: string) {
      const rid = `fz-${++n}`;
      const clientId = (body as { id?: string }).id;
      sent.push({ rid, key, clientId, method });
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${KEYS[key]}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
          'x-request-id': rid,
          ...(session === undefined ? {} : { 'mcp-session-id': session }),
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(5000),
      });
      const text = await res.text();
      return { status: res.status, text, type: res.headers.get('content-type') ?? '', res };
    }

    for (let c = 0; c < CASES; c++) {
      if (c === CASES / 2) {
        // A reload takes `slow` from alice: her tasks of it are no longer hers to see.
        const { config: next } = parseConfigText(config(upstream.url, ['echo']), {}, Date.now());
        assert.equal((await gateway.runtime.reload(next!)).applied, true);
        world.allow.alice = (t) => t === 'echo';
      }
      const key = pick(r, NAMES);
      const own = sessions[key];
      const session = own.length === 0 || r() < 0.2 ? undefined : pick(r, own);
      const clientId = `${key}:${c}`;
      const op = int(r, 10);
      let method: string;
      let answer: Awaited<ReturnType<typeof post>>;
      if (op === 0 || own.length === 0) {
        method = 'initialize';
        answer = await post(
          key,
          {
            jsonrpc: '2.0',
            id: clientId,
            method,
            params: {
              protocolVersion: '2025-11-25',
              capabilities: {},
              clientInfo: { name: 'f', version: '1' },
            },
          },
          undefined,
          method,
        );
        const s = answer.res.headers.get('mcp-session-id');
        if (s !== null) own.push(s);
      } else if (op === 1) {
        method = 'GET';
        const rid = `fz-${++n}`;
        sent.push({ rid, key, clientId: undefined, method });
        const res = await fetch(gateway.mcpUrl, {
          headers: {
            authorization: `Bearer ${KEYS[key]}`,
            accept: 'text/event-stream',
            'mcp-protocol-version': '2025-11-25',
            'x-request-id': rid,
            ...(session === undefined ? {} : { 'mcp-session-id': session }),
            ...(lastEvent[key] !== undefined && r() < 0.5 ? { 'last-event-id': lastEvent[key] } : {}),
          },
          signal: AbortSignal.timeout(5000),
        });
        const text = await res.text();
        answer = { status: res.status, text, type: res.headers.get('content-type') ?? '', res };
        const ids = [...text.matchAll(/^id: (.*)$/gm)].map((x) => x[1] as string);
        if (ids.length > 0) lastEvent[key] = ids[ids.length - 1];
      } else {
        const mine = [...(world.answered.get(key)?.keys() ?? [])];
        const anyId = world.all.length === 0 ? 'task-1' : pick(r, world.all);
        const taskId = mine.length > 0 && r() < 0.5 ? pick(r, mine) : anyId;
        const roll = int(r, 8);
        let params: Record<string, unknown>;
        if (roll === 0) {
          method = 'tools/call';
          const tool = pick(r, ['slow', 'echo', 'other']);
          params =
            r() < 0.5
              ? { name: tool, arguments: {}, task: { ttl: 1000 } }
              : {
                  name: tool,
                  arguments: {},
                  _meta: {
                    'io.modelcontextprotocol/clientCapabilities': {
                      extensions: { 'io.modelcontextprotocol/tasks': {} },
                    },
                  },
                };
        } else if (roll === 1) {
          method = 'tasks/list';
          params = {};
        } else if (roll === 2) {
          method = 'tools/call';
          params = { name: pick(r, ['echo', 'slow']), arguments: {}, _meta: { [RELATED]: { taskId } } };
        } else {
          method = pick(r, TASK_METHODS);
          params = { taskId };
        }
        answer = await post(key, { jsonrpc: '2.0', id: clientId, method, params }, session, method);
      }
      counts[method] = (counts[method] ?? 0) + 1;
      assert.ok(answer.status < 500 || answer.status === 502, `${method}: ${answer.status} ${answer.text}`);
      if (answer.text !== '' && (answer.type.includes('json') || answer.type.includes('event-stream'))) {
        for (const m of messagesOf(answer.type, answer.text)) {
          const bad = unseen(world, key, m);
          if (bad !== undefined) world.violations.push(`${key} (case ${c}, ${method}) saw ${bad}`);
        }
      } else if (answer.status >= 400 && method !== 'GET') {
        assert.fail(`${method}: ${answer.status} without a JSON-RPC error: ${answer.text}`);
      }
    }

    await new Promise((resolve) => setTimeout(resolve, 100));
    const byRid = new Map<string, Record<string, unknown>[]>();
    for (const line of gateway.auditLines) {
      const rid = String(line.request_id);
      byRid.set(rid, [...(byRid.get(rid) ?? []), line]);
    }
    for (const s of sent) {
      const lines = byRid.get(s.rid) ?? [];
      assert.equal(lines.length, 1, `${s.rid} ${s.method}: ${lines.length} audit lines`);
      if (TASK_METHODS.includes(s.method) && s.clientId !== undefined) {
        const allowed = lines[0]!.decision === 'allow';
        assert.equal(
          allowed,
          world.reached.has(s.clientId),
          `${s.rid} ${s.method}: ${JSON.stringify(lines[0])}`,
        );
      }
    }
    assert.deepEqual(world.violations.slice(0, 20), [], `${world.violations.length} violations`);
    console.log(`fuzztasks: ${CASES} cases ${JSON.stringify(counts)}, ${world.all.length} tasks created`);
  });

  it('failed before: a task status whose taskId is a number, null, a list or absent reached every key, result and all', async () => {
    // The gateway records string task ids only, so such a status names no task any key holds, yet it
    // carries a task's status message (the tasks extension's, the tool's output): on the POST stream
    // and the GET stream, written plainly (the byte path) or not, it goes as another key's status goes.
    const stream = async (events: string[], post: boolean): Promise<string> => {
      const local = await startRawUpstream(events);
      const gw = await startTestGateway(config(local.url, ['echo']));
      try {
        const res = await fetch(gw.mcpUrl, {
          method: post ? 'POST' : 'GET',
          headers: {
            authorization: `Bearer ${KEYS.carol}`,
            'content-type': 'application/json',
            accept: post ? 'application/json, text/event-stream' : 'text/event-stream',
            'mcp-protocol-version': '2025-11-25',
          },
          ...(post
            ? {
                body: JSON.stringify({
                  jsonrpc: '2.0',
                  id: 1,
                  method: 'tools/call',
                  params: { name: 'echo' },
                }),
              }
            : {}),
        });
        assert.equal(res.status, 200);
        return await res.text();
      } finally {
        await gw.close(200);
        await local.close();
      }
    };
    const secret = (params: string, method = 'notifications/tasks') =>
      `{"jsonrpc":"2.0","method":"${method}","params":{${params}"status":"completed","result":{"content":[{"type":"text","text":"SECRET"}]}}}`;
    const events = [
      secret(''),
      secret('"taskId":7,'),
      secret('"taskId":null,', 'notifications/tasks/status'),
      secret('"taskId":["t"],', 'notifications/tasks/status'),
      secret('', 'notifications/tasks\u002fstatus'),
      '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"sentinel"}}',
    ];
    for (const post of [true, false]) {
      const text = await stream(events, post);
      assert.ok(!text.includes('SECRET'), `${post ? 'POST' : 'GET'}: ${text}`);
      assert.match(text, /sentinel/);
      if (post) assert.match(text, /"id":1,"result"/);
    }
  });

  it('holds: the registry stays within its bounds under seeded records of long, colliding ids', () => {
    let now = 0;
    const registry = new TaskOwnership({ maxTasks: 500, maxPerOwner: 50, ttlMs: 1000, now: () => now });
    const rr = prng(SEED + 2);
    for (let i = 0; i < 20_000; i++) {
      now += int(rr, 3);
      const owner = `k:${int(rr, 40)}`;
      const id = rr() < 0.5 ? pick(rr, POOL) : `t-${int(rr, 5000)}`;
      registry.record(owner, id, `tool-${int(rr, 40)}`);
      if (rr() < 0.3) registry.owns(owner, id, { tool: () => rr() < 0.9 });
      assert.ok(registry.size <= 500, `size ${registry.size}`);
    }
  });
});

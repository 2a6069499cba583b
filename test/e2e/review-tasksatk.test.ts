/**
 * Attack review of the unread-task bookkeeping (policy/unread-tasks.ts): a key sees a task only while
 * it may use every tool of its task-creating calls whose answers the gateway never read. An upstream
 * that numbers tasks per session (`task-1` in each) made `slow`'s task in one session; if the call
 * is settled without that task being recorded, the key's later `echo` call in another session gets
 * `task-1` too, recorded under `echo` alone, and after a reload took `slow` from the key,
 * `tasks/result` of `task-1` in the first session reads slow's output. Both ways: a way around (a
 * call settled by an answer that was not the one that made the task) and denial (a key made to lose
 * its tasks by others). Through the real gateway in front of a scripted upstream where it can be;
 * "hole: ... failed before:" tests failed on the code they were written against, "holds:" tests
 * pass and would fail if a defence went.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { TaskOwnership } from '../../src/policy/tasks.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { answerInitialize, jsonAnswer, reloadTo, SessionTasks, taskClient } from '../helpers/task-client.ts';

const ALICE = newKey();
const SECRET = 't'.repeat(40);
/** What the `slow` tool's task returns: the key must not see it once the tool is taken from it. */
const SLOW_OUTPUT = 'slow tool output: the payroll';

type Rpc = { id?: string | number; method?: string; params?: Record<string, unknown> };

/** How the upstream answers a call of `slow` with a task (every other request: plainly). */
type SlowAnswer =
  | 'json' // a plain JSON answer
  | 'error-then-task' // on one SSE stream: a JSON-RPC error for the call, then the task it made
  | 'variant-id'; // the task's id written twice, as `taskId` and as `TaskId` (the one it made)

function config(upstreamUrl: string, allow: readonly string[]): string {
  return reviewConfig(upstreamUrl, [{ label: 'alice', key: ALICE, allow }], '', {
    secret: SECRET,
    resources: [],
  });
}

const { headers, call, open } = taskClient(ALICE);
const reload = reloadTo;
const json = jsonAnswer;

/**
 * Whether a request's `_meta` declares the tasks extension as Go's encoding/json reads the client
 * capabilities into a struct: its field `extensions` matched whatever the case of the key.
 */
function goDeclaresTasks(params: Record<string, unknown>): boolean {
  const meta = params._meta as Record<string, unknown> | undefined;
  const caps = meta?.['io.modelcontextprotocol/clientCapabilities'];
  if (typeof caps !== 'object' || caps === null) return false;
  for (const [key, value] of Object.entries(caps))
    if (key.toLowerCase() === 'extensions' && typeof value === 'object' && value !== null)
      if (Object.hasOwn(value, 'io.modelcontextprotocol/tasks')) return true;
  return false;
}

describe('tasksatk review: the unread-task bookkeeping, attacked', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway | undefined;
  let sessions = 0;
  /** Tasks made, numbered per upstream session: which session, which id, which tool. */
  const tasks = new SessionTasks();
  const made = tasks.made;
  let slowAnswer: SlowAnswer = 'json';

  function script(seen: Seen, res: ServerResponse): void {
    if (seen.method !== 'POST') return void res.writeHead(405).end();
    const m = seen.body as Rpc;
    if (m.id === undefined) {
      // A server on a generic JSON-RPC library runs a notification's method, and answers nothing.
      if (m.method === 'tools/call' && typeof m.params?.task === 'object') {
        const session = String(seen.headers['mcp-session-id'] ?? '');
        tasks.make(session, String(m.params.name));
      }
      return void res.writeHead(202).end();
    }
    const params = m.params ?? {};
    const session = String(seen.headers['mcp-session-id'] ?? '');
    if (m.method === 'initialize') return answerInitialize(res, m.id, `upstream-session-${++sessions}`);
    if (m.method === 'tools/call' && goDeclaresTasks(params)) {
      // The tasks extension (2026-07-28 shape), declared as a Go server reads it.
      const taskId = tasks.make(session, String(params.name));
      return json(res, {
        jsonrpc: '2.0',
        id: m.id,
        result: { resultType: 'task', taskId, status: 'working' },
      });
    }
    if (m.method === 'tools/call' && typeof params.task === 'object') {
      const tool = String(params.name);
      const how = tool === 'slow' ? slowAnswer : 'json';
      const taskId = tasks.make(session, tool);
      const answer = {
        jsonrpc: '2.0',
        id: m.id,
        result: { task: { taskId, status: 'working' } },
      };
      if (how === 'json') return json(res, answer);
      if (how === 'variant-id')
        return json(
          res,
          `{"jsonrpc":"2.0","id":${JSON.stringify(m.id)},"result":{"task":{"taskId":"task-9","status":"working","TaskId":"${taskId}"}}}`,
        );
      // An upstream that answers one request twice: an error first, then the task it made anyway.
      const error = { jsonrpc: '2.0', id: m.id, error: { code: -32603, message: 'store slow' } };
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify(error)}\n\ndata: ${JSON.stringify(answer)}\n\n`);
      return;
    }
    let result: unknown = { content: [{ type: 'text', text: 'called' }] };
    if (m.method === 'tasks/result') {
      const task = tasks.find(session, params.taskId);
      result = { content: [{ type: 'text', text: task?.tool === 'slow' ? SLOW_OUTPUT : 'echo output' }] };
    }
    json(res, { jsonrpc: '2.0', id: m.id, result });
  }

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set(script);
  });
  beforeEach(async () => {
    await gateway?.close(200);
    gateway = undefined;
    tasks.clear();
    slowAnswer = 'json';
  });
  after(async () => {
    await gateway?.close(200);
    await upstream.close();
  });

  it("hole: an error answer, then the task the upstream made after all; failed before: the lost tool's task output reached the key", async () => {
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const first = await open(gateway);
    const second = await open(gateway);
    slowAnswer = 'error-then-task';
    const slow = await call(gateway, 'tools/call', { name: 'slow', arguments: {}, task: {} }, first);
    // The client got the error for its call, and the gateway's refusal in place of the second answer.
    assert.match(slow.text, /store slow/);
    assert.doesNotMatch(slow.text, /task-1/);
    assert.deepEqual(
      made.map((t) => t.tool),
      ['slow'],
    );
    const echo = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo.text, /"task-1"/);
    await reload(gateway, config(upstream.url, ['echo']));
    const read = await call(gateway, 'tasks/result', { taskId: 'task-1' }, first);
    assert.ok(!read.text.includes(SLOW_OUTPUT), read.text);
    assert.match(read.text, /Task not found/);
  });

  it("hole: a task's id written again as `TaskId` (what a case-folding client reads); failed before: the lost tool's task output reached the key", async () => {
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const first = await open(gateway);
    const second = await open(gateway);
    slowAnswer = 'variant-id';
    const slow = await call(gateway, 'tools/call', { name: 'slow', arguments: {}, task: {} }, first);
    assert.equal(slow.status, 200, slow.text);
    const echo = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo.text, /"task-1"/);
    await reload(gateway, config(upstream.url, ['echo']));
    const read = await call(gateway, 'tasks/result', { taskId: 'task-1' }, first);
    assert.ok(!read.text.includes(SLOW_OUTPUT), read.text);
    assert.match(read.text, /Task not found/);
  });

  it("hole: a task-creating tools/call sent as a notification (no id, so no answer to read); failed before: the lost tool's task output reached the key", async () => {
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const first = await open(gateway);
    const second = await open(gateway);
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: headers(first),
      body: JSON.stringify({
        jsonrpc: '2.0',
        method: 'tools/call',
        params: { name: 'slow', arguments: {}, task: {} },
      }),
    });
    const text = await res.text();
    const line = gateway.auditLines.at(-1);
    const echo = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo.text, /"task-1"/);
    await reload(gateway, config(upstream.url, ['echo']));
    const read = await call(gateway, 'tasks/result', { taskId: 'task-1' }, first);
    assert.ok(!read.text.includes(SLOW_OUTPUT), read.text);
    // Refused (a task is known only from the answer to the call that made it), and, a notification,
    // dropped as a server ignores one it cannot take: 202 and no body, never forwarded.
    assert.equal(res.status, 202, text);
    assert.equal(text, '');
    assert.ok(
      !upstream.seen.some(
        (seen) =>
          (seen.body as Rpc | undefined)?.id === undefined &&
          (seen.body as Rpc | undefined)?.method === 'tools/call',
      ),
    );
    assert.deepEqual(
      made.map((t) => t.tool),
      ['echo'],
    );
    assert.equal(line?.decision, 'invalid');
  });

  it("hole: the tasks extension declared under `Extensions` (Go reads it as `extensions`); failed before: the lost tool's task output reached the key", async () => {
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const first = await open(gateway);
    const second = await open(gateway);
    // No `params.task`: the gateway read no extension either, and counted no task call.
    const caps = { Extensions: { 'io.modelcontextprotocol/tasks': {} } };
    const slow = await call(
      gateway,
      'tools/call',
      { name: 'slow', arguments: {}, _meta: { 'io.modelcontextprotocol/clientCapabilities': caps } },
      first,
    );
    assert.equal(slow.status, 200, slow.text);
    assert.deepEqual(
      made.map((t) => [t.tool, t.taskId]),
      [['slow', 'task-1']],
    );
    const echo = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo.text, /"task-1"/);
    await reload(gateway, config(upstream.url, ['echo']));
    const read = await call(gateway, 'tasks/result', { taskId: 'task-1' }, first);
    assert.ok(!read.text.includes(SLOW_OUTPUT), read.text);
    assert.match(read.text, /Task not found/);
  });
});

describe('tasksatk review: the registry bounds, attacked', () => {
  const grants = (tools: readonly string[]) => ({ tool: (name: string) => tools.includes(name) });

  it("hole: other principals' unread calls filling the registry's bound in calls; failed before: a key that keeps every tool lost all its tasks", () => {
    // The registry holds maxTasks unread calls in all (100,000 by default: 100 principals with
    // 1,000 calls each, the most one may hold). Past it, the principal adding one was closed: every
    // task of it unknown for the TTL. Scaled down: 4 calls a principal, 8 in all.
    let now = 0;
    const registry = new TaskOwnership({ maxTasks: 8, maxPerOwner: 4, ttlMs: 1000, now: () => now });
    const victim = registry.scope('k:victim', grants(['echo']));
    victim.record('task-1', 'echo');
    assert.equal(victim.owns('task-1'), true);
    for (const attacker of ['k:a', 'k:b'])
      for (let i = 0; i < 4; i++) registry.unread.forwarded(attacker, `${attacker}-call-${i}`, 'echo');
    now = 1;
    // The victim's own call, of a tool it keeps: its tasks stay its own.
    victim.forwarded('victim-call', 'echo');
    assert.equal(victim.owns('task-1'), true, 'the victim lost its task to others filling the bound');
    // The principal holding the most (the first of equals) pays: closed, its calls dropped.
    assert.equal(registry.unread.allows('k:a', undefined), false);
    assert.equal(registry.unread.size, 5);
    victim.answered('victim-call');
    assert.equal(victim.owns('task-1'), true);
  });
});

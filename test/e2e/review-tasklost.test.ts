/**
 * Attack review of task ownership when the answer to a task-creating call is never read (tasklost).
 * The gateway learns a task id only from that answer. An upstream that numbers tasks per session
 * (`task-1` in each) made `slow`'s task in one session; its answer never reached the gateway (the
 * client aborted, the stream was cut, the upstream failed, the answer was refused, it timed out),
 * so the registry held nothing for it. The key's later `echo` call in another session got
 * `task-1` too, recorded under `echo` alone; after a reload took `slow` from the key, `tasks/result`
 * of `task-1` in the first session read slow's output. Through the real gateway in front of a
 * scripted upstream. "hole: ... failed before:" tests failed on the code they were written against;
 * "holds:" tests pass and would fail if the fix overreached.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { answerInitialize, jsonAnswer, reloadTo, SessionTasks, taskClient } from '../helpers/task-client.ts';

const ALICE = newKey();
const SECRET = 'l'.repeat(40);
/** What the `slow` tool's task returns: the key must not see it once the tool is taken from it. */
const SLOW_OUTPUT = 'slow tool output: the payroll';

type Rpc = { id?: string | number; method?: string; params?: Record<string, unknown> };

/** How the upstream answers a call of `slow` with a task (every other request: plainly). */
type SlowAnswer =
  | 'json' // a plain JSON answer
  | 'sse' // the answer as an SSE event after a progress notification
  | 'late-json' // a JSON answer after 400 ms
  | 'cut-sse' // an SSE stream cut before the answer's event
  | 'error-502' // a 502 with a body that is no JSON-RPC
  | 'refused' // a JSON answer with its result written twice (the gateway refuses it)
  | 'error-rpc'; // a JSON-RPC error (no task made)

function config(upstreamUrl: string, allow: readonly string[], extra = ''): string {
  return reviewConfig(upstreamUrl, [{ label: 'alice', key: ALICE, allow }], extra, {
    secret: SECRET,
    resources: [],
  });
}

const { headers, call, open } = taskClient(ALICE);
const reload = reloadTo;
const json = jsonAnswer;

describe('tasklost review: tasks whose creating answer the gateway never read', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway | undefined;
  let sessions = 0;
  /** Tasks made, numbered per upstream session: which session, which id, which tool. */
  const tasks = new SessionTasks();
  const made = tasks.made;
  let slowAnswer: SlowAnswer = 'json';
  /** How long a `late-json` answer waits. */
  let lateMs = 400;
  /** Resolved when the upstream has made the slow task (its answer may not have left yet). */
  let slowMade: (() => void) | undefined;

  function script(seen: Seen, res: ServerResponse): void {
    if (seen.method !== 'POST') return void res.writeHead(405).end();
    if (Array.isArray(seen.body)) {
      // A batch of task-creating calls (numbered per session as the single ones are).
      const session = String(seen.headers['mcp-session-id'] ?? '');
      const answers = (seen.body as Rpc[]).map((m) => {
        const taskId = tasks.make(session, String(m.params?.name));
        return { jsonrpc: '2.0', id: m.id, result: { task: { taskId, status: 'working' } } };
      });
      return json(res, answers);
    }
    const m = seen.body as Rpc;
    if (m.id === undefined) return void res.writeHead(202).end();
    const params = m.params ?? {};
    const session = String(seen.headers['mcp-session-id'] ?? '');
    if (m.method === 'initialize') return answerInitialize(res, m.id, `upstream-session-${++sessions}`);
    if (m.method === 'tools/call' && typeof params.task === 'object') {
      const tool = String(params.name);
      const how = tool === 'slow' ? slowAnswer : 'json';
      if (how === 'error-rpc')
        return json(res, { jsonrpc: '2.0', id: m.id, error: { code: -32603, message: 'no' } });
      const taskId = tasks.make(session, tool);
      const answer = {
        jsonrpc: '2.0',
        id: m.id,
        result: { task: { taskId, status: 'working' } },
      };
      if (tool === 'slow') slowMade?.();
      switch (how) {
        case 'json':
          return json(res, answer);
        case 'sse': {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          const progress = {
            jsonrpc: '2.0',
            method: 'notifications/message',
            params: { level: 'info', data: 1 },
          };
          res.end(`data: ${JSON.stringify(progress)}\n\ndata: ${JSON.stringify(answer)}\n\n`);
          return;
        }
        case 'late-json':
          setTimeout(() => {
            if (!res.destroyed) json(res, answer);
          }, lateMs);
          return;
        case 'cut-sse':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(': the answer is coming\n\n');
          setTimeout(() => res.destroy(), 50);
          return;
        case 'error-502':
          return json(res, 'bad gateway', 502);
        case 'refused': {
          // The result written twice: a first-wins client would read another, so it is refused.
          const text = JSON.stringify(answer).replace(/}$/, ',"result":{}}');
          return json(res, text);
        }
      }
    }
    let result: unknown = { content: [{ type: 'text', text: 'called' }] };
    if (m.method === 'tasks/result') {
      const task = tasks.find(session, params.taskId);
      result = { content: [{ type: 'text', text: task?.tool === 'slow' ? SLOW_OUTPUT : 'echo output' }] };
    } else if (m.method === 'tasks/get') {
      result = { taskId: params.taskId, status: 'completed' };
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
    lateMs = 400;
    slowMade = undefined;
  });
  after(async () => {
    await gateway?.close(200);
    await upstream.close();
  });

  /**
   * The attack: `slow`'s task made in one session with its answer never read (`lose` makes the call
   * and returns once the gateway is done with it), `echo`'s in another with the same id, then a
   * reload takes `slow` from the key. Returns what `tasks/result` of the id reads in each session.
   */
  async function attack(
    how: SlowAnswer,
    lose: (first: string) => Promise<void>,
    extra = '',
  ): Promise<{ first: string; second: string }> {
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo'], extra));
    const first = await open(gateway);
    const second = await open(gateway);
    slowAnswer = how;
    await lose(first);
    assert.deepEqual(
      made.map((t) => [t.session, t.taskId, t.tool]),
      [[upstream.seen.at(-1)?.headers['mcp-session-id'], 'task-1', 'slow']],
      'the upstream made the slow task',
    );
    const echo = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo.text, /"task-1"/);
    await reload(gateway, config(upstream.url, ['echo'], extra));
    const read = (session: string) => call(gateway!, 'tasks/result', { taskId: 'task-1' }, session);
    return { first: (await read(first)).text, second: (await read(second)).text };
  }

  /** What the client got for the slow call (checked after the attack: see refused). */
  let slowText = '';
  /** The slow call, answered as `slowAnswer` says; the client reads whatever comes. */
  const plainly = async (first: string): Promise<void> => {
    slowText = (await call(gateway!, 'tools/call', { name: 'slow', arguments: {}, task: {} }, first)).text;
  };

  function refused(read: { first: string; second: string }, slowGot?: RegExp): void {
    assert.ok(!read.first.includes(SLOW_OUTPUT), read.first);
    assert.match(read.first, /Task not found/);
    // Any of the key's ids may be the unread task: the echo task is unknown too (fail closed).
    assert.match(read.second, /Task not found/);
    // The client got an error for its call, not the task the gateway never read.
    if (slowGot !== undefined) {
      assert.match(slowText, slowGot);
      assert.doesNotMatch(slowText, /task-1/);
    }
  }

  it("hole: client abort before a JSON answer; failed before: the lost tool's task output reached the key", async () => {
    const read = await attack('late-json', async (first) => {
      const abort = new AbortController();
      const made = new Promise<void>((resolve) => (slowMade = resolve));
      const pending = call(
        gateway!,
        'tools/call',
        { name: 'slow', arguments: {}, task: {} },
        first,
        abort.signal,
      ).catch((e: unknown) => e);
      await made;
      abort.abort();
      assert.ok((await pending) instanceof Error);
      // The gateway's line for the aborted call is written once it let go of the exchange.
      const lines = gateway!.auditLines.length;
      for (let i = 0; i < 100 && gateway!.auditLines.length === lines; i++) await sleep(10);
      await sleep(500); // past the upstream's late answer, which nobody reads
    });
    refused(read);
  });

  it("hole: an SSE answer cut before its event; failed before: the lost tool's task output reached the key", async () => {
    refused(await attack('cut-sse', plainly), /"error"/);
  });

  it("hole: an upstream error (502) in place of the answer; failed before: the lost tool's task output reached the key", async () => {
    refused(await attack('error-502', plainly), /"error"/);
  });

  it("hole: an answer with its result written twice (a first-wins client reads the task, the gateway the other), now refused; failed before: the lost tool's task output reached the key", async () => {
    refused(await attack('refused', plainly), /"error"/);
  });

  it("hole: an answer past upstream.call_timeout; failed before: the lost tool's task output reached the key", async () => {
    // undici checks timeouts on a coarse timer (about 0.5-1 s late): the answer comes well after.
    lateMs = 2500;
    refused(await attack('late-json', plainly, '  call_timeout: 200ms\n'), /"error"/);
  });

  it('holds: an answer read (a task as JSON or on a stream, or an error) settles its call: the key keeps the tasks of the tools it still has', async () => {
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const first = await open(gateway);
    const second = await open(gateway);
    slowAnswer = 'error-rpc';
    await plainly(first);
    assert.match(slowText, /"error"/);
    slowAnswer = 'sse';
    await plainly(first);
    assert.match(slowText, /"task-1"/);
    slowAnswer = 'json';
    const slow = await call(gateway, 'tools/call', { name: 'slow', arguments: {}, task: {} }, first);
    assert.match(slow.text, /"task-2"/);
    const echo = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo.text, /"task-1"/);
    const echo2 = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo2.text, /"task-2"/);
    await reload(gateway, config(upstream.url, ['echo']));
    const echo3 = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, second);
    assert.match(echo3.text, /"task-3"/);
    // task-1 and task-2 were answered to both tools' calls: unknown (as before); task-3 is echo's alone.
    assert.match((await call(gateway, 'tasks/result', { taskId: 'task-1' }, first)).text, /Task not found/);
    assert.match((await call(gateway, 'tasks/result', { taskId: 'task-2' }, first)).text, /Task not found/);
    const kept = await call(gateway, 'tasks/result', { taskId: 'task-3' }, second);
    // (Were any slow call's answer taken as unread, task-3 would be unknown too.)
    assert.match(kept.text, /echo output/);
  });

  it("hole: a task pushed out of the registry by the key's newer tasks; failed before: the lost tool's task output reached the key", async () => {
    // Not an unread answer, the same loss: once the key's 1,000 newer tasks (TASK_DEFAULTS.maxPerOwner)
    // pushed slow's task-1 out, the registry forgot its tool, and echo's task-1 of a new session was
    // recorded under echo alone.
    gateway = await startTestGateway(config(upstream.url, ['slow', 'echo']));
    const first = await open(gateway);
    const churn = await open(gateway);
    await plainly(first);
    assert.match(slowText, /"task-1"/);
    for (let i = 0; i < 10; i++) {
      const batch = Array.from({ length: 101 }, (_, j) => ({
        jsonrpc: '2.0',
        id: `b${i}-${j}`,
        method: 'tools/call',
        params: { name: 'echo', arguments: {}, task: {} },
      }));
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: headers(churn),
        body: JSON.stringify(batch),
      });
      assert.equal(res.status, 200, await res.clone().text());
      await res.text();
    }
    const third = await open(gateway);
    const echo = await call(gateway, 'tools/call', { name: 'echo', arguments: {}, task: {} }, third);
    assert.match(echo.text, /"task-1"/);
    await reload(gateway, config(upstream.url, ['echo']));
    const read = await call(gateway, 'tasks/result', { taskId: 'task-1' }, first);
    assert.ok(!read.text.includes(SLOW_OUTPUT), read.text);
    assert.match(read.text, /Task not found/);
  });
});

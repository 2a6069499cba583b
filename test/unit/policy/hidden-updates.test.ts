/**
 * Updates of resources a key may not use (src/policy/hidden-updates.ts): found in a message or a
 * batch, judged as resources/read judges a URI; statuses of tasks the key's scope does not hold;
 * anything else is not an update that hides.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileGrants } from '../../../src/policy/grants.ts';
import { hidesUpdate } from '../../../src/policy/hidden-updates.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';

const grants = compileGrants({ allow: [], prompts: [], resources: ['file:///docs/public/*'] });
const updated = (uri: unknown) => ({
  jsonrpc: '2.0',
  method: 'notifications/resources/updated',
  params: { uri },
});

describe('hidesUpdate', () => {
  it('finds an update of a resource the grants do not allow, alone or in a batch', () => {
    assert.equal(hidesUpdate(updated('file:///docs/secret.txt'), grants, undefined), true);
    assert.equal(
      hidesUpdate([{ jsonrpc: '2.0', id: 1, result: {} }, updated('file:///etc/passwd')], grants, undefined),
      true,
    );
    assert.equal(
      hidesUpdate(updated('file:///docs/public/../secret.txt'), grants, undefined),
      true,
      'a dot segment',
    );
  });

  it('passes updates of allowed resources, other notifications and messages naming no string URI', () => {
    assert.equal(hidesUpdate(updated('file:///docs/public/a.txt'), grants, undefined), false);
    assert.equal(hidesUpdate([updated('file:///docs/public/a.txt')], grants, undefined), false);
    for (const other of [
      updated(42),
      { jsonrpc: '2.0', method: 'notifications/resources/updated' },
      { jsonrpc: '2.0', method: 'notifications/resources/list_changed', params: { uri: 'file:///x' } },
      { jsonrpc: '2.0', method: 'notifications/message', params: { data: 'file:///docs/secret.txt' } },
      null,
      'text',
      [],
    ])
      assert.equal(hidesUpdate(other, grants, undefined), false, JSON.stringify(other));
  });

  it("finds the status of a task the key does not hold (another key's, its tool taken away, a variant)", () => {
    const registry = new TaskOwnership({ now: () => 0 });
    const withEcho = compileGrants({ allow: ['echo'], prompts: [], resources: [] });
    const mine = registry.scope('k:a', withEcho);
    mine.record('echo-task', 'echo');
    mine.record('slow-task', 'slow');
    registry.scope('k:b', withEcho).record('other-task', 'echo');
    const status = (params: Record<string, unknown>) => ({
      jsonrpc: '2.0',
      method: 'notifications/tasks/status',
      params: { status: 'completed', ...params },
    });
    assert.equal(hidesUpdate(status({ taskId: 'echo-task' }), withEcho, mine), false);
    for (const hidden of [
      // A status naming no task by a string id carries a task's status all the same.
      status({ taskId: 42 }),
      status({}),
      status({ taskId: null }),
      status({ taskId: ['echo-task'] }),
      status({ taskId: 'slow-task' }),
      status({ taskId: 'other-task' }),
      status({ taskId: 'unknown' }),
      status({ TaskId: 'slow-task' }),
      status({ task_id: 'echo-task' }),
      [status({ taskId: 'echo-task' }), status({ taskId: 'slow-task' })],
      // The 2026-07-28 tasks extension's name for it.
      { ...status({ taskId: 'slow-task' }), method: 'notifications/tasks' },
    ])
      assert.equal(hidesUpdate(hidden, withEcho, mine), true, JSON.stringify(hidden));
    assert.equal(hidesUpdate(status({ taskId: 'echo-task' }), withEcho, undefined), true, 'no scope');
  });

  it('finds a message about a task the key created with a tool it lost (related-task), and only that', () => {
    const registry = new TaskOwnership({ now: () => 0 });
    const withEcho = compileGrants({ allow: ['echo'], prompts: [], resources: [] });
    const mine = registry.scope('k:a', withEcho);
    mine.record('echo-task', 'echo');
    mine.record('slow-task', 'slow');
    const about = (taskId: unknown, id?: number) => ({
      jsonrpc: '2.0',
      ...(id === undefined ? {} : { id }),
      method: id === undefined ? 'notifications/message' : 'elicitation/create',
      params: { _meta: { 'io.modelcontextprotocol/related-task': { taskId } } },
    });
    assert.equal(hidesUpdate(about('slow-task'), withEcho, mine), true);
    assert.equal(hidesUpdate(about('slow-task', 3), withEcho, mine), true, 'a server request');
    assert.equal(hidesUpdate([about('echo-task'), about('slow-task')], withEcho, mine), true);
    for (const passes of [about('echo-task'), about('never-seen'), about(7)])
      assert.equal(hidesUpdate(passes, withEcho, mine), false, JSON.stringify(passes));
    assert.equal(hidesUpdate(about('slow-task'), withEcho, undefined), false, 'no scope: nothing known lost');
    // A response naming it is the answer to a request the key made: judged by that request.
    const response = { jsonrpc: '2.0', id: 1, result: { _meta: about('slow-task').params._meta } };
    assert.equal(hidesUpdate(response, withEcho, mine), false);
  });
});

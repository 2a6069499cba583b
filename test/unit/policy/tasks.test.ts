import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TaskOwnership, createdTaskId } from '../../../src/policy/tasks.ts';
import { ALLOW_ALL, compileGrants } from '../../../src/policy/grants.ts';

function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('TaskOwnership', () => {
  it('a task belongs to the principal that created it, and only to it', () => {
    const r = new TaskOwnership({ now: () => 0 });
    r.record('a', 't1');
    assert.equal(r.owns('a', 't1'), true);
    assert.equal(r.owns('b', 't1'), false);
    assert.equal(r.owns('a', 't2'), false);
    assert.equal(r.size, 1);
  });

  it('two principals may own the same id (servers numbering tasks per session)', () => {
    const r = new TaskOwnership({ now: () => 0 });
    r.record('a', '1');
    r.record('b', '1');
    assert.equal(r.owns('a', '1'), true);
    assert.equal(r.owns('b', '1'), true);
    assert.equal(r.size, 2);
    r.record('a', '1');
    assert.equal(r.size, 2, 'recording again does not duplicate');
  });

  it('expires a task ttlMs after it was last recorded or used', () => {
    const c = clock();
    const r = new TaskOwnership({ now: c.now, ttlMs: 1000 });
    r.record('a', 't1');
    c.advance(900);
    assert.equal(r.owns('a', 't1'), true, 'a hit extends its life');
    c.advance(900);
    assert.equal(r.owns('a', 't1'), true);
    c.advance(1000);
    assert.equal(r.owns('a', 't1'), false);
    assert.equal(r.size, 0);
  });

  it('holds at most maxPerOwner tasks per principal, forgetting its oldest', () => {
    const r = new TaskOwnership({ now: () => 0, maxPerOwner: 3 });
    for (const id of ['t1', 't2', 't3', 't4']) r.record('a', id);
    r.record('b', 'x');
    assert.equal(r.owns('a', 't1'), false);
    assert.deepEqual(
      ['t2', 't3', 't4'].map((id) => r.owns('a', id)),
      [true, true, true],
    );
    assert.equal(r.owns('b', 'x'), true, 'another principal is not affected');
    assert.equal(r.size, 4);
  });

  it('holds at most maxTasks in all, forgetting the least recently active principal\u2019s oldest first', () => {
    const r = new TaskOwnership({ now: () => 0, maxTasks: 3 });
    r.record('a', 'a1');
    r.record('b', 'b1');
    r.record('a', 'a2');
    r.record('c', 'c1');
    assert.equal(r.size, 3);
    assert.equal(r.owns('b', 'b1'), false, 'b was the least recently active');
    assert.equal(r.owns('a', 'a1'), true);
    assert.equal(r.owns('c', 'c1'), true);
  });

  it('forgets on request, and scopes bind a principal', () => {
    const r = new TaskOwnership({ now: () => 0 });
    const a = r.scope('a', ALLOW_ALL);
    a.record('t1', 'echo');
    assert.equal(a.owns('t1'), true);
    assert.equal(r.scope('b', ALLOW_ALL).owns('t1'), false);
    r.forget('a', 't1');
    assert.equal(a.owns('t1'), false);
    assert.equal(r.size, 0);
  });

  it('a task is its key\u2019s only while the key may use the tool that created it', () => {
    const r = new TaskOwnership({ now: () => 0 });
    const before = compileGrants({ allow: ['echo', 'search'], prompts: [], resources: [] });
    // A reload compiles new grants: the same key, without `search`.
    const after = compileGrants({ allow: ['echo'], prompts: [], resources: [] });
    r.scope('a', before).record('t-search', 'search');
    r.scope('a', before).record('t-echo', 'echo');
    assert.equal(r.scope('a', before).owns('t-search'), true);
    assert.equal(r.scope('a', after).owns('t-search'), false, 'its tool left the key');
    assert.equal(r.scope('a', after).owns('t-echo'), true);
    assert.equal(r.size, 2, 'kept, not forgotten: a reload may give the tool back');
    assert.equal(r.scope('a', before).owns('t-search'), true);
    // A tag of a build that did not carry the tool: ownership alone, as it was judged then.
    r.scope('a', before).record('t-old', undefined);
    assert.equal(r.scope('a', after).owns('t-old'), true);
    // Disowned: known to have been lost, as opposed to never seen.
    assert.equal(r.scope('a', after).disowns('t-search'), true);
    assert.equal(r.scope('a', after).disowns('t-echo'), false);
    assert.equal(r.scope('a', after).disowns('t-old'), false);
    assert.equal(r.scope('a', after).disowns('never-seen'), false);
    assert.equal(r.scope('b', after).disowns('t-search'), false, 'another key never held it');
  });

  it('a task id two tools answered with is the key\u2019s only while it may use both (ids numbered per session)', () => {
    let now = 0;
    const r = new TaskOwnership({ now: () => now, ttlMs: 1000 });
    const both = compileGrants({ allow: ['echo', 'search'], prompts: [], resources: [] });
    const echo = compileGrants({ allow: ['echo'], prompts: [], resources: [] });
    r.scope('a', both).record('task-1', 'search');
    r.scope('a', both).record('task-1', 'echo');
    assert.equal(r.size, 1);
    assert.equal(r.scope('a', both).owns('task-1'), true);
    assert.equal(r.scope('a', echo).owns('task-1'), false, 'search also answered with it');
    // Once expired, what created it before has no say.
    now = 5000;
    r.scope('a', both).record('task-1', 'echo');
    assert.equal(r.scope('a', echo).owns('task-1'), true);
    // An id that more than 16 tools answered with is unknown, whatever tool records it next.
    const all = compileGrants({ allow: ['*'], prompts: [], resources: [] });
    for (let i = 0; i < 17; i++) r.scope('a', all).record('task-2', `tool_${i}`);
    r.scope('a', all).record('task-2', 'echo');
    assert.equal(r.scope('a', all).owns('task-2'), false);
  });

  it('refuses nonsense options (programmer error)', () => {
    assert.throws(() => new TaskOwnership({ now: () => 0, ttlMs: 0 }), TypeError);
    assert.throws(() => new TaskOwnership({ now: () => 0, maxTasks: -1 }), TypeError);
    assert.throws(() => new TaskOwnership({ now: 5 as unknown as () => number }), TypeError);
  });
});

describe('createdTaskId', () => {
  it('reads both revisions\u2019 CreateTaskResult', () => {
    assert.equal(createdTaskId({ task: { taskId: 'a', status: 'working' } }), 'a');
    assert.equal(createdTaskId({ resultType: 'task', taskId: 'b', status: 'working' }), 'b');
  });

  it('ignores anything else', () => {
    assert.equal(createdTaskId({ content: [], isError: false }), undefined);
    assert.equal(createdTaskId({ resultType: 'complete', taskId: 'c' }), undefined, 'a tasks/get result');
    assert.equal(createdTaskId({ resultType: 'task', taskId: 7 }), undefined);
    assert.equal(createdTaskId({ task: 'x' }), undefined);
    assert.equal(createdTaskId(null), undefined);
  });
});

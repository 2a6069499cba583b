import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TOOLS, UnreadTaskCalls } from '../../../src/policy/unread-tasks.ts';
import type { UnreadOptions } from '../../../src/policy/unread-tasks.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';
import type { ToolGrant } from '../../../src/policy/tasks.ts';

function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const only = (...tools: string[]): ToolGrant => ({ tool: (name) => tools.includes(name) });
const every: ToolGrant = { tool: () => true };

function unread(now: () => number, options: Partial<UnreadOptions> = {}): UnreadTaskCalls {
  return new UnreadTaskCalls({
    maxPerOwner: 100,
    maxCalls: 1000,
    maxOwners: 100,
    ttlMs: 1000,
    now,
    ...options,
  });
}

describe('UnreadTaskCalls', () => {
  it('counts each forwarded call by its tool until an answer to that call is read', () => {
    const u = unread(() => 0);
    assert.equal(u.allows('a', only('echo')), true, 'nothing unread');
    u.forwarded('a', 'c1', 'slow');
    u.forwarded('a', 'c2', 'slow');
    u.forwarded('a', 'c3', 'echo');
    assert.equal(u.size, 3);
    assert.equal(u.allows('a', only('echo')), false, 'a slow call is unread');
    assert.equal(u.allows('a', only('echo', 'slow')), true);
    assert.equal(u.allows('b', only('echo')), true, 'per principal');
    u.answered('a', 'c1');
    assert.equal(u.allows('a', only('echo')), false, 'one slow call is still unread');
    u.answered('b', 'c2');
    assert.equal(u.allows('a', only('echo')), false, "another principal's answer settles nothing");
    u.answered('a', 'c2');
    assert.equal(u.allows('a', only('echo')), true);
    assert.equal(u.size, 1);
    u.answered('a', 'c3');
    assert.equal(u.size, 0);
    assert.equal(u.ownerCount, 0, 'a principal with nothing unread is not held');
  });

  it('an answer read twice (a replayed stream) settles only its own call, never another of the tool', () => {
    const u = unread(() => 0);
    u.forwarded('a', 'c1', 'slow');
    u.answered('a', 'c1');
    u.forwarded('a', 'c2', 'slow');
    u.answered('a', 'c1');
    u.answered('a', 'never-forwarded');
    assert.equal(u.size, 1);
    assert.equal(u.allows('a', only('echo')), false);
  });

  it('forgets an unanswered call ttlMs after it was forwarded', () => {
    const c = clock();
    const u = unread(c.now);
    u.forwarded('a', 'c1', 'slow');
    c.advance(500);
    u.forwarded('a', 'c2', 'other');
    c.advance(499);
    assert.equal(u.allows('a', only('echo')), false);
    c.advance(1);
    assert.equal(u.allows('a', only('echo', 'other')), true, 'the slow call expired');
    assert.equal(u.allows('a', only('echo')), false, 'the later one has not');
    assert.equal(u.size, 1);
    c.advance(500);
    assert.equal(u.allows('a', only('echo')), true);
    assert.equal(u.size, 0);
    assert.equal(u.ownerCount, 0);
  });

  it('past maxPerOwner unread calls the principal is closed (all its tasks unknown) for ttlMs, and no other', () => {
    const c = clock();
    const u = unread(c.now, { maxPerOwner: 3 });
    for (let i = 0; i < 3; i++) u.forwarded('a', `c${i}`, 'echo');
    u.forwarded('b', 'b0', 'echo');
    assert.equal(u.allows('a', every), true);
    u.forwarded('a', 'c3', 'echo');
    assert.equal(u.allows('a', every), false, 'closed, whatever its grants');
    assert.equal(u.allows('a', undefined), false);
    assert.equal(u.size, 1, "its calls are dropped: only b's is held");
    u.answered('a', 'c0');
    assert.equal(u.allows('a', every), false, 'an answer does not open it');
    assert.equal(u.allows('b', every), true);
    for (let i = 0; i < 1000; i++) u.forwarded('a', `more${i}`, `tool${i}`);
    assert.equal(u.size, 1, 'a closed principal holds no calls');
    c.advance(999);
    assert.equal(u.allows('a', every), false, 'each call while closed keeps it closed');
    c.advance(1);
    assert.equal(u.allows('a', every), true, 'open again ttlMs after its last call');
  });

  it(`past ${MAX_TOOLS} tools the principal is closed`, () => {
    const u = unread(() => 0);
    for (let i = 0; i < MAX_TOOLS; i++) u.forwarded('a', `c${i}`, `tool${i}`);
    u.forwarded('a', 'again', 'tool0');
    assert.equal(u.allows('a', every), true);
    u.forwarded('a', 'one-more', `tool${MAX_TOOLS}`);
    assert.equal(u.allows('a', every), false);
    assert.equal(u.size, 0);
  });

  it('past maxCalls in all, the principal holding the most is closed, and the total stays bounded', () => {
    const u = unread(() => 0, { maxCalls: 4 });
    for (let i = 0; i < 3; i++) u.forwarded('a', `a${i}`, 'echo');
    u.forwarded('b', 'b0', 'echo');
    u.forwarded('c', 'c0', 'echo');
    assert.equal(u.size, 2);
    assert.equal(u.allows('a', every), false, 'a held the most: closed');
    assert.equal(u.allows('b', every), true);
    assert.equal(u.allows('c', only('x')), false, "c's call is held");
    assert.equal(u.allows('c', every), true);
    // One principal filling the bound alone closes itself.
    const v = unread(() => 0, { maxCalls: 2 });
    v.forwarded('a', 'a0', 'echo');
    v.forwarded('a', 'a1', 'echo');
    v.forwarded('a', 'a2', 'echo');
    assert.equal(v.size, 0);
    assert.equal(v.allows('a', every), false);
  });

  it('a call held already is counted once', () => {
    const u = unread(() => 0, {});
    u.forwarded('a', 'a0', 'echo');
    u.forwarded('a', 'a0', 'echo');
    assert.equal(u.size, 1);
    u.answered('a', 'a0');
    assert.equal(u.size, 0);
    assert.equal(u.allows('a', only('x')), true);
  });

  it('past maxOwners principals, one not held is closed until held ones expire', () => {
    const c = clock();
    const u = unread(c.now, { maxOwners: 2 });
    u.forwarded('a', 'a0', 'echo');
    u.forwarded('b', 'b0', 'echo');
    u.forwarded('c', 'c0', 'echo');
    assert.equal(u.ownerCount, 2);
    assert.equal(u.allows('c', every), false, 'c was not held: closed');
    assert.equal(u.allows('a', every), true);
    c.advance(1000);
    u.forwarded('d', 'd0', 'echo');
    assert.equal(u.ownerCount, 1, 'expired principals made room');
    assert.equal(u.allows('d', only('x')), false, "d's call is held");
    assert.equal(u.allows('d', every), true);
  });
});

describe('UnreadTaskCalls.lost: tasks forgotten before they expired', () => {
  it('holds one entry per tool until the latest of its tasks would have expired', () => {
    const c = clock();
    const u = unread(c.now);
    u.lost('a', ['slow'], c.now() + 300);
    u.lost('a', ['slow', 'other'], c.now() + 600);
    u.lost('a', ['slow'], c.now() + 100);
    u.lost('a', ['gone'], c.now());
    assert.equal(u.size, 2, 'slow once, other once; an expired task adds nothing');
    c.advance(599);
    assert.equal(u.allows('a', only('echo', 'other')), false, 'slow is held until its latest task');
    assert.equal(u.allows('a', only('echo', 'slow')), false);
    c.advance(1);
    assert.equal(u.allows('a', only('echo')), true);
    assert.equal(u.size, 0);
  });

  it('an id too many tools answered with closes the principal until it would have expired', () => {
    const c = clock();
    const u = unread(c.now);
    u.lost('a', null, c.now() + 300);
    assert.equal(u.allows('a', every), false);
    assert.equal(u.allows('b', every), true);
    c.advance(300);
    assert.equal(u.allows('a', every), true);
  });
});

describe('TaskOwnership with unread task-creating calls', () => {
  it("a task pushed out by newer ones keeps the key's tasks bound to its tool until it would have expired", () => {
    const c = clock();
    const r = new TaskOwnership({ now: c.now, maxPerOwner: 2, ttlMs: 1000 });
    r.record('a', 'task-1', 'slow');
    c.advance(100);
    r.record('a', 'task-2', 'echo');
    r.record('a', 'task-3', 'echo');
    assert.equal(r.owns('a', 'task-1', only('slow', 'echo')), false, 'forgotten');
    // The next answer with task-1 starts afresh, under echo alone; slow's task may be it.
    r.record('a', 'task-1', 'echo');
    assert.equal(r.owns('a', 'task-1', only('echo')), false);
    assert.equal(r.owns('a', 'task-3', only('echo')), false);
    assert.equal(r.owns('a', 'task-3', only('echo', 'slow')), true);
    c.advance(900);
    assert.equal(r.owns('a', 'task-1', only('echo')), true, "slow's task would have expired by now");
  });

  it("the bound in all pushes out the least recently active principal's task: its tools are held for it", () => {
    const r = new TaskOwnership({ now: () => 0, maxTasks: 2 });
    r.record('a', 'task-1', 'slow');
    r.record('b', 'task-1', 'echo');
    r.record('b', 'task-2', 'echo');
    assert.equal(r.size, 2);
    r.record('a', 'task-1', 'echo');
    assert.equal(r.owns('a', 'task-1', only('echo')), false);
    assert.equal(r.owns('b', 'task-2', only('echo')), true, 'b lost none of its tools');
  });

  it('a key holds no task (and disowns every id) while a call of a tool it lost is unread', () => {
    const r = new TaskOwnership({ now: () => 0 });
    r.record('a', 'task-1', 'echo');
    r.unread.forwarded('a', 'c1', 'slow');
    assert.equal(r.owns('a', 'task-1', only('echo', 'slow')), true);
    assert.equal(r.disowns('a', 'task-1', only('echo', 'slow')), false);
    // The unread slow answer may have held task-1, or any id: unknown, and known to be lost.
    assert.equal(r.owns('a', 'task-1', only('echo')), false);
    assert.equal(r.disowns('a', 'task-1', only('echo')), true);
    assert.equal(r.disowns('a', 'never-seen', only('echo')), true);
    const scope = r.scope('a', only('echo'));
    assert.equal(scope.owns('task-1'), false);
    scope.answered('c1');
    assert.equal(scope.owns('task-1'), true);
    assert.equal(scope.disowns('never-seen'), false);
    scope.forwarded('c2', 'slow');
    assert.equal(r.unread.size, 1);
    assert.equal(scope.owns('task-1'), false);
  });
});

/**
 * Task ownership: a key may only see and act on tasks it created, with a tool it may still use. The
 * gateway never invents task ids; it learns them from the upstream's answers to the principal's own
 * task-creating requests (2025-11-25: `result.task.taskId` after a request with `params.task`;
 * 2026-07-28 tasks extension: `result.resultType === "task"` with `result.taskId`), with the name of
 * the tool whose call created each (the request's tag carries it: integrity/request-tag.ts).
 * tasks/get, tasks/result, tasks/update, tasks/cancel for any other id are answered like an unknown
 * task, and tasks/list is filtered. A task whose tool a reload took from the key is unknown to it
 * from then on (a task's result is its tool's output); it is kept, and known again if the tool is
 * given back.
 *
 * Memory is bounded: at most `maxPerOwner` tasks per principal (its oldest is forgotten first) and
 * `maxTasks` in all (the least recently active principal's oldest task goes first). An entry expires
 * `ttlMs` after it was recorded or last used. A forgotten task becomes unknown to its key, and one
 * forgotten before it expired keeps the key's tasks bound to its tools until then (unread-tasks.ts).
 * Ids are per principal, so two principals may own the same id (servers that number tasks per session).
 *
 * An answer the gateway never read (unread-tasks.ts) may have held any of the key's ids: while a
 * task-creating call of a tool is unread, the key holds its tasks only while it may use that tool too.
 */
import { UnreadTaskCalls } from './unread-tasks.ts';

export const TASK_DEFAULTS = Object.freeze({
  maxTasks: 100_000,
  maxPerOwner: 1_000,
  ttlMs: 24 * 60 * 60 * 1000,
});

export interface TaskOwnershipOptions {
  readonly maxTasks?: number;
  readonly maxPerOwner?: number;
  readonly ttlMs?: number;
  /** Milliseconds, monotonic or wall clock (only differences are used). */
  readonly now: () => number;
}

/** One principal's view of the registry: what the pipeline passes to judge and the list filter. */
export interface TaskScope {
  /**
   * The principal created `taskId` (not expired) with a tool its grants still allow, and they allow
   * the tool of each of its task-creating calls whose answer went unread.
   */
  owns(taskId: string): boolean;
  /** `tool`: the tool whose call created the task (undefined: a tag of a build that did not say). */
  record(taskId: string, tool: string | undefined): void;
  /**
   * The principal created `taskId` (not expired) with a tool its grants no longer allow, or an
   * unread answer of a tool they no longer allow may have held it: a task it is known to have
   * lost, not merely one this replica never saw.
   */
  disowns(taskId: string): boolean;
  /** A task-creating call of `tool`, tagged as `call` (request-tag.ts callOf), is forwarded. */
  forwarded(call: string, tool: string | undefined): void;
  /** An answer to `call` was read (a result, a task or not, or an error): it holds no unknown task. */
  answered(call: string): void;
}

/** The one grant a task needs: its tool's (policy/grants.ts). */
export interface ToolGrant {
  readonly tool: (name: string) => boolean;
}

interface Entry {
  expiry: number;
  /**
   * The tools whose calls answered with this task id (undefined: a tag that did not say). Usually
   * one; an upstream that numbers tasks per session (`task-1` in each) gives one key the same id
   * for calls of two tools, and `tasks/result` in one session then reads the task the other tool
   * made: the id is the key's only while it may use every tool that created it. Once the entry
   * expires so do its tools: the next answer with the id starts afresh (binding ids to sessions
   * would close that, but would also make a task unknown to the key's next session, where a client
   * polls it after a reconnect). One pushed out before it expires (by the key's newer tasks, or the
   * registry's bound) leaves its tools with the key's unread calls (unread-tasks.ts lost) until it
   * would have: any id of the key may be it.
   */
  readonly tools: readonly (string | undefined)[] | typeof TOO_MANY;
}

/** Entry.tools of an id more than MAX_TOOLS_PER_TASK tools answered with: no task of one, unknown. */
const TOO_MANY = null;

/** The most tools one task id may be recorded with (Entry.tools). */
const MAX_TOOLS_PER_TASK = 16;

export class TaskOwnership {
  private readonly maxTasks: number;
  private readonly maxPerOwner: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** owner → (taskId → its entry); both maps kept in least-recently-used order. */
  private readonly owners = new Map<string, Map<string, Entry>>();
  private count = 0;
  /** Task-creating calls forwarded whose answers were not read (yet), per principal. */
  readonly unread: UnreadTaskCalls;

  constructor(options: TaskOwnershipOptions) {
    this.maxTasks = positive(options.maxTasks ?? TASK_DEFAULTS.maxTasks, 'maxTasks');
    this.maxPerOwner = positive(options.maxPerOwner ?? TASK_DEFAULTS.maxPerOwner, 'maxPerOwner');
    this.ttlMs = positive(options.ttlMs ?? TASK_DEFAULTS.ttlMs, 'ttlMs');
    if (typeof options.now !== 'function') throw new TypeError('TaskOwnership: now must be a function');
    this.now = options.now;
    this.unread = new UnreadTaskCalls({
      maxPerOwner: this.maxPerOwner,
      maxCalls: this.maxTasks,
      maxOwners: this.maxTasks,
      ttlMs: this.ttlMs,
      now: this.now,
    });
  }

  /** Number of tasks held. */
  get size(): number {
    return this.count;
  }

  record(owner: string, taskId: string, tool?: string): void {
    let tasks = this.owners.get(owner);
    let tools: Entry['tools'] = [tool];
    if (tasks === undefined) {
      tasks = new Map();
    } else {
      this.owners.delete(owner);
      const known = tasks.get(taskId);
      if (known !== undefined) {
        tasks.delete(taskId);
        this.count--;
        // Still live: the tools that created it before keep their say (see Entry).
        if (known.expiry > this.now()) tools = withTool(known.tools, tool);
      }
    }
    this.owners.set(owner, tasks);
    tasks.set(taskId, { expiry: this.now() + this.ttlMs, tools });
    this.count++;
    while (tasks.size > this.maxPerOwner) this.dropOldest(owner, tasks);
    while (this.count > this.maxTasks) {
      const [oldestOwner, oldestTasks] = this.owners.entries().next().value as [string, Map<string, Entry>];
      this.dropOldest(oldestOwner, oldestTasks);
    }
  }

  /**
   * True when `owner` created `taskId`, it has not expired and `grants` (when given) allow every
   * tool that created it and every tool of its unread task-creating calls (unread-tasks.ts); a hit
   * extends its life. A task whose tool is not allowed is left as it is.
   */
  owns(owner: string, taskId: string, grants?: ToolGrant): boolean {
    const tasks = this.owners.get(owner);
    if (tasks === undefined) return false;
    const entry = tasks.get(taskId);
    if (entry === undefined) return false;
    const now = this.now();
    if (entry.expiry <= now) {
      this.forget(owner, taskId);
      return false;
    }
    if (entry.tools === TOO_MANY) return false;
    if (grants !== undefined && !entry.tools.every((tool) => tool === undefined || grants.tool(tool)))
      return false;
    if (!this.unread.allows(owner, grants)) return false;
    tasks.delete(taskId);
    entry.expiry = now + this.ttlMs;
    tasks.set(taskId, entry);
    return true;
  }

  /**
   * True when `owner` created `taskId`, it has not expired, and `grants` deny a tool that created
   * it; or when they deny the tool of an unread task-creating call of `owner`, which may have
   * created any id (unread-tasks.ts).
   */
  disowns(owner: string, taskId: string, grants: ToolGrant): boolean {
    if (!this.unread.allows(owner, grants)) return true;
    const entry = this.owners.get(owner)?.get(taskId);
    if (entry === undefined || entry.expiry <= this.now()) return false;
    return entry.tools === TOO_MANY || entry.tools.some((tool) => tool !== undefined && !grants.tool(tool));
  }

  forget(owner: string, taskId: string): void {
    const tasks = this.owners.get(owner);
    if (tasks === undefined || !tasks.delete(taskId)) return;
    this.count--;
    if (tasks.size === 0) this.owners.delete(owner);
  }

  /** `grants`: the principal's, judged by the request the scope serves. */
  scope(owner: string, grants: ToolGrant): TaskScope {
    return new OwnerScope(this, owner, grants);
  }

  /**
   * Forgets the owner's oldest task. Its tools are held as unread (unread-tasks.ts lost) until it
   * would have expired: its id is no longer known, and the next answer with it would start afresh.
   */
  private dropOldest(owner: string, tasks: Map<string, Entry>): void {
    const [oldest, entry] = tasks.entries().next().value as [string, Entry];
    this.unread.lost(owner, entry.tools, entry.expiry);
    tasks.delete(oldest);
    this.count--;
    if (tasks.size === 0) this.owners.delete(owner);
  }
}

class OwnerScope implements TaskScope {
  private readonly registry: TaskOwnership;
  private readonly owner: string;
  private readonly grants: ToolGrant;
  constructor(registry: TaskOwnership, owner: string, grants: ToolGrant) {
    this.registry = registry;
    this.owner = owner;
    this.grants = grants;
  }
  owns(taskId: string): boolean {
    return this.registry.owns(this.owner, taskId, this.grants);
  }
  record(taskId: string, tool: string | undefined): void {
    this.registry.record(this.owner, taskId, tool);
  }
  disowns(taskId: string): boolean {
    return this.registry.disowns(this.owner, taskId, this.grants);
  }
  forwarded(call: string, tool: string | undefined): void {
    this.registry.unread.forwarded(this.owner, call, tool);
  }
  answered(call: string): void {
    this.registry.unread.answered(this.owner, call);
  }
}

/**
 * `tools` and `tool`; TOO_MANY past MAX_TOOLS_PER_TASK, which stays so (a list an upstream could grow
 * without end, and an id that many tools answered with is no one tool's task).
 */
function withTool(tools: Entry['tools'], tool: string | undefined): Entry['tools'] {
  if (tools === TOO_MANY || tools.includes(tool)) return tools;
  return tools.length >= MAX_TOOLS_PER_TASK ? TOO_MANY : [...tools, tool];
}

/**
 * The id of the task a result creates, if it is a CreateTaskResult of either revision:
 * 2025-11-25 `{ task: { taskId } }`, 2026-07-28 tasks extension `{ resultType: "task", taskId }`.
 */
export function createdTaskId(result: unknown): string | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const r = result as { task?: unknown; resultType?: unknown; taskId?: unknown };
  if (r.resultType === 'task') return typeof r.taskId === 'string' ? r.taskId : undefined;
  const task = r.task;
  if (typeof task === 'object' && task !== null) {
    const id = (task as { taskId?: unknown }).taskId;
    if (typeof id === 'string') return id;
  }
  return undefined;
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new TypeError(`TaskOwnership: ${name} must be a positive number`);
  return value;
}

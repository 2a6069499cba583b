/**
 * Task ownership: a key may only see and act on tasks it created. The gateway never invents task
 * ids; it learns them from the upstream's answers to the principal's own task-creating requests
 * (2025-11-25: `result.task.taskId` after a request with `params.task`; 2026-07-28 tasks extension:
 * `result.resultType === "task"` with `result.taskId`). tasks/get, tasks/result, tasks/update,
 * tasks/cancel for any other id are answered like an unknown task, and tasks/list is filtered.
 *
 * Memory is bounded: at most `maxPerOwner` tasks per principal (its oldest is forgotten first) and
 * `maxTasks` in all (the least recently active principal's oldest task goes first). An entry expires
 * `ttlMs` after it was recorded or last used. A forgotten task simply becomes unknown to its key.
 * Ids are per principal, so two principals may own the same id (servers that number tasks per session).
 */

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
  owns(taskId: string): boolean;
  record(taskId: string): void;
}

export class TaskOwnership {
  private readonly maxTasks: number;
  private readonly maxPerOwner: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** owner → (taskId → expiry); both maps kept in least-recently-used order. */
  private readonly owners = new Map<string, Map<string, number>>();
  private count = 0;

  constructor(options: TaskOwnershipOptions) {
    this.maxTasks = positive(options.maxTasks ?? TASK_DEFAULTS.maxTasks, 'maxTasks');
    this.maxPerOwner = positive(options.maxPerOwner ?? TASK_DEFAULTS.maxPerOwner, 'maxPerOwner');
    this.ttlMs = positive(options.ttlMs ?? TASK_DEFAULTS.ttlMs, 'ttlMs');
    if (typeof options.now !== 'function') throw new TypeError('TaskOwnership: now must be a function');
    this.now = options.now;
  }

  /** Number of tasks held. */
  get size(): number {
    return this.count;
  }

  record(owner: string, taskId: string): void {
    let tasks = this.owners.get(owner);
    if (tasks === undefined) {
      tasks = new Map();
    } else {
      this.owners.delete(owner);
      if (tasks.delete(taskId)) this.count--;
    }
    this.owners.set(owner, tasks);
    tasks.set(taskId, this.now() + this.ttlMs);
    this.count++;
    while (tasks.size > this.maxPerOwner) this.dropOldest(owner, tasks);
    while (this.count > this.maxTasks) {
      const [oldestOwner, oldestTasks] = this.owners.entries().next().value as [string, Map<string, number>];
      this.dropOldest(oldestOwner, oldestTasks);
    }
  }

  /** True when `owner` created `taskId` and it has not expired; a hit extends its life. */
  owns(owner: string, taskId: string): boolean {
    const tasks = this.owners.get(owner);
    if (tasks === undefined) return false;
    const expiry = tasks.get(taskId);
    if (expiry === undefined) return false;
    const now = this.now();
    if (expiry <= now) {
      this.forget(owner, taskId);
      return false;
    }
    tasks.delete(taskId);
    tasks.set(taskId, now + this.ttlMs);
    return true;
  }

  forget(owner: string, taskId: string): void {
    const tasks = this.owners.get(owner);
    if (tasks === undefined || !tasks.delete(taskId)) return;
    this.count--;
    if (tasks.size === 0) this.owners.delete(owner);
  }

  scope(owner: string): TaskScope {
    return new OwnerScope(this, owner);
  }

  private dropOldest(owner: string, tasks: Map<string, number>): void {
    const oldest = tasks.keys().next().value as string;
    tasks.delete(oldest);
    this.count--;
    if (tasks.size === 0) this.owners.delete(owner);
  }
}

class OwnerScope implements TaskScope {
  private readonly registry: TaskOwnership;
  private readonly owner: string;
  constructor(registry: TaskOwnership, owner: string) {
    this.registry = registry;
    this.owner = owner;
  }
  owns(taskId: string): boolean {
    return this.registry.owns(this.owner, taskId);
  }
  record(taskId: string): void {
    this.registry.record(this.owner, taskId);
  }
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

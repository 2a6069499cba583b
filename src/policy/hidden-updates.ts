/**
 * Notifications that name a resource the key may not use never reach it. The one the protocol
 * defines is `notifications/resources/updated` (its `params.uri`): an upstream sends it for a
 * subscription, and the key's subscription may be older than its allowlist (a 2025 session's
 * `resources/subscribe` outlives a reload that narrowed the key: the subscription is the upstream's
 * state), or the upstream may send it for resources nobody subscribed to. Either would show the key
 * the name of a resource its lists hide, and when it changes. Such an event is dropped from the
 * stream (its id is kept: see sse-rewrite.ts DROP; in a batch, only the update goes),
 * and a JSON body holding one is refused, as a response to nothing would be.
 *
 * The URI is judged as `resources/read` judges one (policy/judge.ts: a well-formed name the key's
 * resources allow; under ALLOW_ALL every URI passes, as every read does). A key in `params` that a
 * client's decoder reads as `uri` without being it (`URI`, `Uri`: case-variants.ts) names a resource
 * the gateway cannot judge: the update is dropped. A message whose `uri` is not a string names no
 * resource and passes, as before. A repeated `method`, `params` or `uri` is refused by the response
 * matching (integrity/restore.ts), as a first-wins client would read another.
 *
 * A `notifications/tasks/status` (the 2026-07-28 tasks extension's `notifications/tasks`; its
 * `params.taskId`) is judged the same way by the key's task scope (policy/tasks.ts): it carries the
 * task tasks/get answers with (its status message, and in the tasks extension a completed task's
 * result, the tool's output), so a status of a task that tasks/get answers "Task not found" for
 * (another key's, one whose tool a reload took from the key, one another replica recorded), or
 * whose `taskId` is absent or not a string (it names no task a key holds), is dropped too; a variant of `taskId` (`TaskId`, `task_id`) is dropped as a variant of `uri` is, and
 * a repeated `taskId` is refused by the response matching as a repeated `uri` is.
 * Status notifications are optional: a client polls tasks/get for its tasks whether or not they
 * come.
 *
 * Any other request or notification about a task (2025-11-25: `params._meta` names it under
 * `io.modelcontextprotocol/related-task`: an elicitation the task's tool asks, its progress and log
 * messages) is dropped when the key created that task with a tool it may no longer use: the
 * question shows what the tool asks and the key's answer would steer it. One about a task the
 * registry does not hold for the key passes: the answer that created it may not have been read yet
 * (it races on another stream), and such a request the client must see.
 */
import type { Grants } from './grants.ts';
import type { TaskScope } from './tasks.ts';
import { ALLOW_ALL } from './grants.ts';
import { isName, resourceAllowed } from './judge.ts';
import { caseVariant, memberNames } from './case-variants.ts';
import { messageStarts, skipValue } from '../integrity/json-spans.ts';

const UPDATED = 'notifications/resources/updated';
const RELATED_TASK = 'io.modelcontextprotocol/related-task';
/** A task's status: 2025-11-25's method, and the 2026-07-28 tasks extension's. */
const STATUS = new Set(['notifications/tasks/status', 'notifications/tasks']);

/** The member of an update's params the gateway judges. */
export const UPDATE_PARAMS = memberNames(['uri']);
/** The member of a task status's params the gateway judges. */
export const STATUS_PARAMS = memberNames(['taskId']);

/**
 * Whether `value` (a message, or a batch of them) holds an update of a resource `grants` hide, the
 * status of a task `tasks` does not hold (without a scope, every task's: fail closed), or a message
 * about a task the key lost (tasks.disowns).
 */
export function hidesUpdate(value: unknown, grants: Grants, tasks: TaskScope | undefined): boolean {
  if (grants === ALLOW_ALL) return false;
  if (!Array.isArray(value)) return hiddenUpdate(value, grants, tasks);
  for (const item of value) if (hiddenUpdate(item, grants, tasks)) return true;
  return false;
}

/**
 * `text` (whose JSON.parse is the batch `value`) without the updates `grants` hide, its other
 * messages as they are written; undefined when nothing else is left.
 */
export function withoutHiddenUpdates(
  text: string,
  value: readonly unknown[],
  grants: Grants,
  tasks: TaskScope | undefined,
): string | undefined {
  const starts = messageStarts(text);
  const kept: string[] = [];
  for (let i = 0; i < value.length; i++) {
    if (hiddenUpdate(value[i], grants, tasks)) continue;
    const start = starts[i] as number;
    kept.push(text.slice(start, skipValue(text, start)));
  }
  return kept.length === 0 ? undefined : `[${kept.join(',')}]`;
}

function hiddenUpdate(message: unknown, grants: Grants, tasks: TaskScope | undefined): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { method?: unknown; params?: unknown };
  if (typeof m.params !== 'object' || m.params === null) return false;
  if (typeof m.method === 'string' && tasks !== undefined && aboutLostTask(m.params, tasks)) return true;
  if (typeof m.method === 'string' && STATUS.has(m.method)) {
    if (caseVariant(m.params, STATUS_PARAMS) !== undefined) return true;
    const taskId = (m.params as { taskId?: unknown }).taskId;
    // A status whose taskId is absent or not a string names no task the key could hold (the gateway
    // records string ids only) yet carries a task's status message, or its result: dropped.
    return typeof taskId !== 'string' || !(tasks !== undefined && tasks.owns(taskId));
  }
  if (m.method !== UPDATED) return false;
  if (caseVariant(m.params, UPDATE_PARAMS) !== undefined) return true;
  const uri = (m.params as { uri?: unknown }).uri;
  return typeof uri === 'string' && !(isName(uri) && resourceAllowed(grants, uri));
}

/** Whether `params._meta` names a related task the key created with a tool it may no longer use. */
function aboutLostTask(params: object, tasks: TaskScope): boolean {
  const meta = (params as { _meta?: unknown })._meta;
  if (typeof meta !== 'object' || meta === null) return false;
  const related = (meta as Record<string, unknown>)[RELATED_TASK];
  if (typeof related !== 'object' || related === null) return false;
  const taskId = (related as { taskId?: unknown }).taskId;
  return typeof taskId === 'string' && tasks.disowns(taskId);
}

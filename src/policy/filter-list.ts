/**
 * Rewrites the upstream's answers to the requests a verdict marked: list results keep only the
 * entries the key may use (tools, prompts, resources, resource templates, its own tasks), and the
 * task a task-creating request produced is recorded for the principal. A list result carries only
 * the list that was asked for: another kind's list beside it (an upstream answering every list
 * method with its whole catalogue) is dropped. `nextCursor` is sealed for the principal
 * (integrity/cursors.ts: its text may name the page's last, hidden, entry), or dropped when it
 * cannot be; it is kept when a page ends up empty (the client then asks for the next page, as it
 * would after any page). A 2026-07-28 caching scope other than `"private"` becomes `"private"`
 * (privateScope). Everything else in a result is left as it is. Fail closed: an entry that is
 * not an object with a string name/uri/taskId is dropped, and a list field that is not an array
 * becomes empty, as does a result that is an array.
 */
import { filterListFast } from './fast-list.ts';
import { UNREADABLE } from './unreadable.ts';
import type { FastListOptions } from './fast-list.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import type { Grants } from './grants.ts';
import { resourceAllowed } from './judge.ts';
import type { ListKind, ResultFilter } from './methods.ts';
import { createdTaskId } from './tasks.ts';
import type { TaskScope } from './tasks.ts';
import type { ListPins } from '../pinning/pins.ts';
import { parsedAsSpelled } from '../jsonrpc/key-check.ts';
import { caseVariant, ENTRY_MEMBERS, isVariant, LIST_RESULT_MEMBERS, memberNames } from './case-variants.ts';
import type { CursorSealer } from '../integrity/cursors.ts';
import { mayBeTaskTag } from '../integrity/request-tag.ts';
import type { TaskPlan } from '../integrity/request-tag.ts';
import type { ResponseIds } from '../integrity/restore.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';

/** What to do with the response to one request id: filter a list, or record the task it creates. */
export type ResponseAction = ResultFilter | TaskPlan;
/** Request id → action, built by the pipeline from the verdicts (`filter`, `recordTask`). */
export type ResponsePlan = ReadonlyMap<JsonRpcId, ResponseAction>;

const LIST_KINDS: readonly ListKind[] = ['tools', 'prompts', 'resources', 'resourceTemplates', 'tasks'];

/**
 * Returns `result` itself when nothing had to change, else a shallow copy with the list filtered,
 * other kinds' lists dropped and `nextCursor` sealed by `seal` (left as it is without one: tests).
 */
export function filterListResult(
  kind: ListKind,
  result: unknown,
  grants: Grants,
  tasks?: TaskScope,
  pins?: ListPins,
  seal?: CursorSealer,
): unknown {
  // A result that is an array holds no list the filter can read, but a client that unwraps a
  // one-element array (Jackson's UNWRAP_SINGLE_VALUE_ARRAYS) reads its first entry as the result:
  // an empty list in its place (fail closed). A scalar or null names nothing.
  if (Array.isArray(result)) return { [kind]: [] };
  if (typeof result !== 'object' || result === null) return result;
  let record = result as Record<string, unknown>;
  for (const other of LIST_KINDS) {
    if (other === kind || !Object.hasOwn(record, other)) continue;
    if (record === result) record = { ...record };
    delete record[other];
  }
  // A key a case-folding client reads as a list or the cursor (`"Tools"`, `"next_cursor"`): dropped,
  // as another kind's list is (it was not judged).
  for (const key in record) {
    if (!isVariant(key, LIST_RESULT_MEMBERS)) continue;
    if (record === result) record = { ...record };
    delete record[key];
  }
  record = privateScope(record, result);
  if (seal !== undefined && Object.hasOwn(record, 'nextCursor')) {
    const next = record.nextCursor;
    // An empty cursor names no next page (a client paging while it has one would loop): dropped.
    const sealed = typeof next === 'string' && next !== '' ? seal(kind, next) : undefined;
    if (record === result) record = { ...record };
    if (sealed === undefined) delete record.nextCursor;
    else record.nextCursor = sealed;
  }
  if (!Object.hasOwn(record, kind)) return record;
  const list = record[kind];
  if (!Array.isArray(list)) return { ...record, [kind]: [] };
  const keep = keeper(kind, grants, tasks, pins);
  let kept: unknown[] | undefined;
  for (let i = 0; i < list.length; i++) {
    const entry: unknown = list[i];
    const ok = keep(entry);
    if (ok && kept !== undefined) kept.push(entry);
    else if (!ok && kept === undefined) kept = list.slice(0, i);
  }
  return kept === undefined ? record : { ...record, [kind]: kept };
}

/**
 * A resources/read result keeps the contents of URIs the key may read (and no other key read as
 * `contents`: CONTENTS_RESULT); an entry without a string `uri` goes, and a `contents` that is not
 * an array becomes empty (fail closed). Its caching scope becomes the key's (privateScope).
 */
export function filterContents(result: unknown, grants: Grants): unknown {
  // An array holds no contents the filter can read (filterListResult says why it is emptied).
  if (Array.isArray(result)) return { contents: [] };
  if (!isPlainObject(result)) return result;
  let record = result;
  for (const key in record) {
    if (!isVariant(key, CONTENTS_RESULT)) continue;
    if (record === result) record = { ...record };
    delete record[key];
  }
  record = privateScope(record, result);
  if (!Object.hasOwn(record, 'contents')) return record;
  const contents = record.contents;
  if (!Array.isArray(contents)) return { ...record, contents: [] };
  const kept = contents.filter((e: unknown) => isEntry(e, 'uri') && resourceAllowed(grants, e.uri as string));
  return kept.length === contents.length ? record : { ...record, contents: kept };
}

/**
 * 2026-07-28 results carry caching hints, and `cacheScope: "public"` (the Go SDK's default) lets any
 * client or intermediary (a shared gateway, a multi-user host) serve the result to every caller.
 * What the gateway filtered for a key holds what that key may see (its tools, the contents it may
 * read): reused for another key, it would show that key what its lists hide, and answer a read the
 * gateway refuses it without the request ever reaching the gateway. So its scope is the key's alone:
 * any value but `"private"` becomes `"private"`, and so does a missing one beside a `ttlMs` (the
 * schema's comment makes an absent scope `"public"`, and the C# SDK reads it so: a ttl with no scope
 * is a result any cache may share for that long). A result with neither (2025-era) gets none: with
 * no ttl it is stale at once, and no cache serves it again. `record` is `result` or already a copy.
 */
function privateScope(record: Record<string, unknown>, result: object): Record<string, unknown> {
  if (Object.hasOwn(record, CACHE_SCOPE) ? record[CACHE_SCOPE] === PRIVATE : !Object.hasOwn(record, TTL))
    return record;
  const out = record === result ? { ...record } : record;
  out[CACHE_SCOPE] = PRIVATE;
  return out;
}

// The byte paths (fast-list.ts, list-scan.ts) answer only a result whose scope is spelled `"private"`,
// or one with neither a scope nor a ttl.
const CACHE_SCOPE = 'cacheScope';
const TTL = 'ttlMs';
const PRIVATE = 'private';
/**
 * A resources/read result's members that are judged: its contents and the caching hints. A key a
 * case-folding client reads as one of them is dropped: `"Contents"` (or `"contentſ"`) holding another
 * URI's contents reached such a client (Go's encoding/json v1, mcp-go) unfiltered, as the contents.
 */
const CONTENTS_RESULT = memberNames(['contents', CACHE_SCOPE, TTL]);

function keeper(
  kind: ListKind,
  grants: Grants,
  tasks: TaskScope | undefined,
  pins: ListPins | undefined,
): (entry: unknown) => boolean {
  switch (kind) {
    case 'tools':
      return (e) =>
        isEntry(e, 'name') && grants.tool(e.name as string) && pinned(pins, kind, e.name as string, e);
    case 'prompts':
      return (e) =>
        isEntry(e, 'name') && grants.prompt(e.name as string) && pinned(pins, kind, e.name as string, e);
    case 'resources':
      return (e) => isEntry(e, 'uri') && resourceAllowed(grants, e.uri as string);
    case 'resourceTemplates':
      // Judged as resources/list and completion judge a URI: a template spelled with a dot segment
      // (`file:///public/../private/{name}`) matches a glob its every read is refused by, so it is
      // not shown.
      return (e) => isEntry(e, 'uriTemplate') && resourceAllowed(grants, e.uriTemplate as string);
    case 'tasks':
      return (e) => tasks !== undefined && isEntry(e, 'taskId') && tasks.owns(e.taskId as string);
  }
}

/**
 * An object whose `member` is a string, with no other key a case-folding client reads as it
 * (case-variants.ts ENTRY_MEMBERS): what the client reads is what is judged.
 */
function isEntry(e: unknown, member: keyof typeof ENTRY_MEMBERS): e is Record<string, unknown> {
  return (
    isPlainObject(e) && typeof e[member] === 'string' && caseVariant(e, ENTRY_MEMBERS[member]) === undefined
  );
}

/** A parsed entry is judged by the bytes the client will receive: its re-serialisation. */
function pinned(
  pins: ListPins | undefined,
  kind: 'tools' | 'prompts',
  name: string,
  entry: unknown,
): boolean {
  if (pins === undefined) return true;
  const bytes = Buffer.from(JSON.stringify(entry));
  return pins.pass(kind, name, bytes, 0, bytes.length);
}

/** What the answer to a task-creating call said: told to the task scope once the answer passes. */
interface TaskAnswer {
  readonly plan: TaskPlan;
  /** The task it created, if any. */
  readonly taskId: string | undefined;
  /** It holds no task the registry would not hear of (plainlyCreated): its call is answered. */
  readonly settles: boolean;
}

/**
 * Applies the plan to one parsed JSON-RPC response (or anything else, which is left alone);
 * returns the replacement message, or undefined when it is unchanged. What a task-creating call's
 * answer said is added to `answers`, for the caller to tell the task scope (tellTasks) once the
 * body is known to pass as it was read.
 */
function applyPlan(
  message: unknown,
  plan: ResponsePlan,
  grants: Grants,
  tasks: TaskScope | undefined,
  pins: ListPins | undefined,
  seal: CursorSealer | undefined,
  answers: TaskAnswer[],
): unknown {
  if (!isPlainObject(message) || Object.hasOwn(message, 'method')) return undefined;
  const hasResult = Object.hasOwn(message, 'result');
  if (!hasResult && !Object.hasOwn(message, 'error')) return undefined;
  const id = message.id;
  if (typeof id !== 'string' && typeof id !== 'number') return undefined;
  const action = plan.get(id);
  if (action === undefined) return undefined;
  if (typeof action === 'object') {
    if (tasks === undefined) return undefined;
    const taskId = hasResult ? createdTaskId(message.result) : undefined;
    answers.push({ plan: action, taskId, settles: !hasResult || plainlyCreated(message.result, taskId) });
    return undefined;
  }
  if (!hasResult) return undefined;
  if (action === 'contents') return { ...message, result: filterContents(message.result, grants) };
  // Always re-serialised, even when nothing was removed: the raw bytes may hold what JSON.parse
  // did not keep (a duplicate key, first-wins parsers read differently), and the client must get
  // exactly the list that was judged.
  return { ...message, result: filterListResult(action, message.result, grants, tasks, pins, seal) };
}

/**
 * Tells the task scope what the answers to task-creating calls said: each task created is recorded
 * (with its call's tool) before its call is settled, so the id is known either way (a call whose
 * answer is never read keeps the key's tasks to its tool: unread-tasks.ts).
 */
function tellTasks(answers: readonly TaskAnswer[], tasks: TaskScope | undefined): void {
  if (tasks === undefined) return;
  for (const { plan, taskId, settles } of answers) {
    if (taskId !== undefined) tasks.record(taskId, plan.tool);
    if (settles && plan.call !== undefined) tasks.answered(plan.call);
  }
}

/**
 * A refused response (restore.ts: a second answer to a request, an answer on another request's
 * stream, a key not read as spelled) that names a task-creating call: its call is unread again. An upstream that answers a call with an
 * error and then with the task it made after all had the error settle the call and the task refused
 * unread, so the registry never heard of a task the upstream holds: the key's next task of another
 * tool with the same id (an upstream numbering per session) was recorded under that tool alone, and
 * once a reload took the first tool, the id read its output. Only on refusal, and only for an id
 * spelled as a task call's tag: `ids.name` costs an HMAC.
 */
export function unreadAgain(value: unknown, ids: ResponseIds, tasks: TaskScope | undefined): void {
  if (tasks === undefined) return;
  for (const message of Array.isArray(value) ? (value as unknown[]) : [value]) {
    if (!isPlainObject(message) || typeof message.id !== 'string' || !mayBeTaskTag(message.id)) continue;
    // Another exchange's call too (an upstream answering it on this request's stream): ids.signedTag.
    const plan = (ids.name(message.id) ?? ids.signedTag?.(message.id))?.plan;
    if (typeof plan === 'object' && plan.call !== undefined) tasks.forwarded(plan.call, plan.tool);
  }
}

/**
 * Whether a task-creating call's result names at most the one task `taskId` (undefined: none), as
 * every client reads it: one revision's shape (`task`, or `resultType` with `taskId`), or neither,
 * and no key a case-folding client reads as one of them (nor as the task's `taskId`). Anything else
 * (`"Task"` beside a plain result, both shapes naming two ids) may hold a task the registry did not
 * record: its call stays unread (unread-tasks.ts), so the key's tasks stay bound to its tool.
 */
function plainlyCreated(result: unknown, taskId: string | undefined): boolean {
  if (!isPlainObject(result) || caseVariant(result, TASK_RESULT) !== undefined) return false;
  const nested = Object.hasOwn(result, 'task');
  // `"TaskId"` beside the task's `taskId`: a case-folding client (Go's encoding/json v1) reads that
  // one, an id the registry did not record for this call.
  const task = result.task;
  if (nested && isPlainObject(task) && caseVariant(task, ENTRY_MEMBERS.taskId) !== undefined) return false;
  // (`resultType` names other kinds of result too: only "task" is one.)
  const flat = result.resultType === 'task' || Object.hasOwn(result, 'taskId');
  if (taskId === undefined) return !nested && !flat;
  return nested !== flat;
}

/** A CreateTaskResult's members (tasks.ts createdTaskId), whose case variants a client may read. */
const TASK_RESULT = memberNames(['task', 'taskId', 'resultType']);

/**
 * An application/json response body: one response or a batch of them. Returns `body` itself when
 * nothing changed. Throws ERR_UPSTREAM_PROTOCOL when the body is not JSON (it cannot be filtered,
 * so it must not be passed on).
 */
export function filterJsonResponseBody(
  body: Buffer,
  plan: ResponsePlan,
  grants: Grants,
  tasks?: TaskScope,
  pins?: ListPins,
  seal?: CursorSealer,
): Buffer {
  const fast = recordsTask(plan) ? undefined : filterListFast(body, fastOptions(plan, grants, pins));
  if (fast !== undefined) return fast;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new GatewayError('ERR_UPSTREAM_PROTOCOL', { cause });
  }
  const answers: TaskAnswer[] = [];
  const out = mapMessages(value, (m) => applyPlan(m, plan, grants, tasks, pins, seal, answers));
  // The body passes as it is only when it holds nothing to filter as the client reads it. This
  // parse is checked on its own: the caller's parse of the same bytes may have read them as spelled
  // and still built what makes this one misread (key-check.ts parsedAsSpelled).
  if (out === undefined && !parsedAsSpelled(body, value))
    throw new GatewayError('ERR_UPSTREAM_PROTOCOL', {
      message: 'upstream sent an object key the gateway did not read as spelled',
    });
  tellTasks(answers, tasks);
  return out === undefined ? body : Buffer.from(JSON.stringify(out));
}

/**
 * The data of one SSE event: the rewritten JSON text when the event is a planned response that had
 * to change, else undefined (the event passes untouched). Data that is not JSON is not a JSON-RPC
 * message and passes too.
 */
export function rewriteEventData(
  data: string,
  plan: ResponsePlan,
  grants: Grants,
  tasks?: TaskScope,
  pins?: ListPins,
  seal?: CursorSealer,
): string | undefined {
  if (data.length > FAST_PATH_MIN_CHARS && !recordsTask(plan)) {
    const bytes = Buffer.from(data);
    const fast = filterListFast(bytes, fastOptions(plan, grants, pins));
    if (fast !== undefined) return fast === bytes ? undefined : fast.toString('utf8');
  }
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    // Data that is not JSON is not a JSON-RPC message and passes; but something that looks like a
    // response and cannot be read is not passed on (a looser client parser might read a list).
    return data.includes('"result"') ? UNREADABLE : undefined;
  }
  const answers: TaskAnswer[] = [];
  const out = mapMessages(value, (m) => applyPlan(m, plan, grants, tasks, pins, seal, answers));
  // Passed as it is: checked as filterJsonResponseBody checks it.
  if (out === undefined && !parsedAsSpelled(data, value)) return UNREADABLE;
  tellTasks(answers, tasks);
  return out === undefined ? undefined : JSON.stringify(out);
}

/**
 * Applies `replace` to one message or to each message of a batch. Returns the new value, or
 * undefined when `replace` changed nothing (it returns undefined for a message it leaves alone).
 */
export function mapMessages(value: unknown, replace: (message: unknown) => unknown): unknown {
  if (!Array.isArray(value)) return replace(value);
  let changed = false;
  const out = value.map((item: unknown) => {
    const replaced = replace(item);
    if (replaced === undefined) return item;
    changed = true;
    return replaced;
  });
  return changed ? out : undefined;
}

/**
 * Whether a response the plan covers may answer a task-creating call: every message then takes the
 * parsed path (applyPlan), which settles the call an error answers too, where the byte path passes
 * anything but a list's result as it is.
 */
function recordsTask(plan: ResponsePlan): boolean {
  for (const action of plan.values()) if (typeof action === 'object') return true;
  return false;
}

/** Below this, parsing is as cheap as scanning (and progress events stay on the simple path). */
const FAST_PATH_MIN_CHARS = 4096;

function fastOptions(plan: ResponsePlan, grants: Grants, pins: ListPins | undefined): FastListOptions {
  // A task to record is no list: the parsed path records it (recordsTask keeps such plans off it).
  const kindFor = (id: JsonRpcId): string | undefined => {
    const action = plan.get(id);
    return typeof action === 'object' ? 'task' : action;
  };
  if (pins === undefined) {
    return {
      kindFor,
      keep: (kind, name) => (kind === 'tools' ? grants.tool(name) : grants.prompt(name)),
    };
  }
  return {
    kindFor,
    keep: (kind, name, body, start, end) =>
      (kind === 'tools' ? grants.tool(name) : grants.prompt(name)) && pins.pass(kind, name, body, start, end),
    startList: (kind, body, open, end, count) => pins.startList(kind, body, open, end, count),
  };
}

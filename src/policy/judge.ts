/**
 * Judges one parsed JSON-RPC message against a principal's grants, by the rules of methods.ts.
 * Pure and cheap: one table lookup, one or two matcher calls, and the verdict object.
 *
 * A denied call is answered like a server that does not have the tool, prompt, resource, task or
 * method: JSON-RPC -32602 (-32601 for methods) with the SDKs' texts (`Tool X not found`, as the
 * TypeScript SDK v2 sends it; v1 adds an "MCP error -32602: " prefix). Above all, every name outside
 * the key's lists gets the gateway's answer whether or not it exists upstream, so a key cannot tell
 * a hidden tool from a missing one.
 */
import type { CallRecord } from '../pipeline/context.ts';
import type { JsonRpcId, JsonRpcMessage } from '../jsonrpc/message.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import { ALLOW_ALL } from './grants.ts';
import type { Grants } from './grants.ts';
import { METHODS } from './methods.ts';
import { caseVariant, memberNames } from './case-variants.ts';
import { plainResourceUri } from './resource-uri.ts';
import { PARAMS_READ as PARAMS_MEMBERS_READ } from '../jsonrpc/read-depth.ts';
import type { MethodSpec, ResultFilter, Revision } from './methods.ts';
import type { TaskScope } from './tasks.ts';

export interface JudgeOptions {
  /** `policy.unknown_methods`: what to do with a method that is not in the table. */
  readonly unknownMethods: 'allow' | 'deny';
  /**
   * Pinning (src/pinning/), when on: every tools and prompts list is filtered (whatever the grants),
   * and a call to a tool or prompt whose definition is not as pinned is refused like a hidden one.
   */
  readonly pins?: { callable(kind: 'tools' | 'prompts', name: string): boolean } | undefined;
}

export interface Verdict {
  readonly allowed: boolean;
  /** What the audit line records for this message. */
  readonly record: CallRecord;
  /** The error to answer with when denied (its rpcId is the message's id). */
  readonly error: GatewayError | undefined;
  /** For an allowed list request (unless the grants allow everything): the array to filter. */
  readonly filter: ResultFilter | undefined;
  /**
   * The response may create a task (2025-11-25 `params.task`; 2026-07-28 a request declaring the
   * tasks extension): the pipeline records its task id for this principal (filter-list.ts does it).
   */
  readonly recordTask: boolean;
}

const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';
/** The prefix of every notification's method in the table (and in MCP). */
const NOTIFICATION = 'notifications/';
const CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
const PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
const RELATED_TASK = 'io.modelcontextprotocol/related-task';

/**
 * @param tasks the principal's view of the task registry; without it every task method is denied
 *   (fail closed), except under ALLOW_ALL.
 */
export function judge(
  message: JsonRpcMessage,
  grants: Grants,
  options: JudgeOptions,
  tasks?: TaskScope,
): Verdict {
  const m = message as { id?: JsonRpcId; method?: string; params?: Record<string, unknown> };
  const id = m.id ?? null;
  const method = m.method;
  if (method === undefined) return allow(undefined, id, undefined, undefined, undefined);
  const spec = METHODS.get(method);
  const params = m.params;
  if (spec === undefined) {
    if (options.unknownMethods === 'allow') {
      // Passed unjudged, but its `inputResponses` (a roots answer there is cut: roots.ts) and its
      // `_meta` (the task it names: relatedTask) are read all the same: another spelling of either
      // (`input_responses`, `InputResponses`, `meta`) would hand roots, or a task, no rule read to an
      // upstream whose decoder (pydantic, Go's encoding/json) takes it for that member.
      const unread = params === undefined ? undefined : caseVariant(params, UNKNOWN_METHOD_READ);
      if (unread !== undefined) return caseInvalid(method, id, 'params', unread);
      return (
        relatedTask(method, m.id, params, grants, tasks) ?? allow(method, id, undefined, undefined, undefined)
      );
    }
    return deny(method, id, 'ERR_METHOD_DENIED', 'Method not found', undefined, undefined, params);
  }
  const variant = params === undefined ? undefined : caseVariant(params, PARAMS_READ);
  if (variant !== undefined) return caseInvalid(method, id, 'params', variant);
  if (removedIn(spec, params)) {
    // What that revision's server answers (HTTP 404, -32601), whoever asks: the upstream would too.
    return deny(method, id, 'ERR_METHOD_DENIED', 'Method not found', undefined, undefined, params);
  }
  // A notification sent with an id is a request to the gateway, which replaces only its id
  // (integrity/restore.ts): a `notifications/cancelled` would reach the upstream with the
  // `requestId` the client wrote, untranslated, and an upstream that acts on a cancellation
  // whatever its id would cancel the request that id names (another key's, if its tag ever leaked).
  if (m.id !== undefined && spec.rule !== 'server-only' && method.startsWith(NOTIFICATION)) {
    return invalid(method, id, `${method} is a notification: it takes no id`);
  }
  if (spec.rule !== 'server-only') {
    const related = relatedTask(method, m.id, params, grants, tasks);
    if (related !== undefined) return related;
  }
  const all = grants === ALLOW_ALL;
  switch (spec.rule) {
    case 'allow':
      return allow(method, id, undefined, undefined, undefined);
    case 'list': {
      // A list asked for as a notification gets no answer, yet its cursor would reach the upstream
      // unopened (cursors.ts opens only a request's): not a list request at all.
      if (id === null) return invalid(method, id, `${method} is a request: it needs an id`);
      // Every key's list is planned, even one allowed every tool: its cursor is sealed for it, and
      // another kind's list an upstream adds beside it is dropped (filter-list.ts). Only without
      // authentication (one principal, every grant) does the list stream through untouched.
      const pinned = options.pins !== undefined && (spec.list === 'tools' || spec.list === 'prompts');
      return allow(method, id, undefined, undefined, all && !pinned ? undefined : spec.list);
    }
    case 'server-only':
      return deny(method, id, 'ERR_METHOD_DENIED', 'Method not found', undefined, undefined, params);
    case 'tool': {
      const name = params?.name;
      if (!isName(name)) return invalid(method, id, 'params.name must be a well-formed string');
      const creates = createsTask(params);
      const task = tasks !== undefined && creates;
      // A task is known only from the answer to the call that made it (policy/unread-tasks.ts): a
      // call sent as a notification gets none, and a server running a notification's method (a
      // generic JSON-RPC library does) made a task the gateway could not count.
      if (id === null && creates)
        return invalid(method, id, `${method} with a task is a request: it needs an id`);
      if (!(all || grants.tool(name)))
        return deny(method, id, 'ERR_TOOL_DENIED', `Tool ${name} not found`, 'tool', name);
      if (options.pins !== undefined && !options.pins.callable('tools', name))
        return deny(method, id, 'ERR_TOOL_UNPINNED', `Tool ${name} not found`, 'tool', name);
      return allow(method, id, 'tool', name, undefined, task);
    }
    case 'prompt': {
      const name = params?.name;
      if (!isName(name)) return invalid(method, id, 'params.name must be a well-formed string');
      return judgePrompt(method, id, name, grants, all, options);
    }
    case 'resource': {
      const uri = params?.uri;
      if (!isName(uri)) return invalid(method, id, 'params.uri must be a well-formed string');
      // A read's result may carry the contents of other URIs (a directory, a followed link): only
      // those the key may read reach it (filter-list.ts).
      const contents = !all && method === 'resources/read' ? 'contents' : undefined;
      if (all || resourceAllowed(grants, uri)) return allow(method, id, 'resource', uri, contents);
      return deny(method, id, 'ERR_RESOURCE_DENIED', `Resource ${uri} not found`, 'resource', uri);
    }
    case 'completion':
      return judgeCompletion(method, id, params, grants, all, options);
    case 'listen':
      return judgeListen(method, id, params, grants, all, tasks);
    case 'task': {
      const taskId = params?.taskId;
      if (!isName(taskId)) return invalid(method, id, 'params.taskId must be a well-formed string');
      if (all || ownsTask(tasks, taskId)) return allow(method, id, undefined, undefined, undefined);
      return taskDenied(method, id);
    }
  }
}

function judgeCompletion(
  method: string,
  id: JsonRpcId | null,
  params: Record<string, unknown> | undefined,
  grants: Grants,
  all: boolean,
  options: JudgeOptions,
): Verdict {
  const ref = params?.ref;
  if (typeof ref !== 'object' || ref === null) return invalid(method, id, 'params.ref must be an object');
  const variant = caseVariant(ref, REF_READ);
  if (variant !== undefined) return caseInvalid(method, id, 'params.ref', variant);
  const { type, name, uri } = ref as { type?: unknown; name?: unknown; uri?: unknown };
  if (type === 'ref/prompt') {
    if (!isName(name)) return invalid(method, id, 'params.ref.name must be a well-formed string');
    return judgePrompt(method, id, name, grants, all, options);
  }
  if (type === 'ref/resource') {
    if (!isName(uri)) return invalid(method, id, 'params.ref.uri must be a well-formed string');
    if (all || resourceAllowed(grants, uri)) return allow(method, id, 'resource', uri, undefined);
    return deny(method, id, 'ERR_RESOURCE_DENIED', `Resource template ${uri} not found`, 'resource', uri);
  }
  return invalid(method, id, 'params.ref.type must be ref/prompt or ref/resource');
}

/** A prompt name (prompts/get, a prompt completion): the key's list, then its pin. */
function judgePrompt(
  method: string,
  id: JsonRpcId | null,
  name: string,
  grants: Grants,
  all: boolean,
  options: JudgeOptions,
): Verdict {
  if (!(all || grants.prompt(name)))
    return deny(method, id, 'ERR_PROMPT_DENIED', `Prompt ${name} not found`, 'prompt', name);
  if (options.pins !== undefined && !options.pins.callable('prompts', name))
    return deny(method, id, 'ERR_PROMPT_UNPINNED', `Prompt ${name} not found`, 'prompt', name);
  return allow(method, id, 'prompt', name, undefined);
}

/** subscriptions/listen (2026-07-28): the resource URIs and task ids it subscribes to. */
function judgeListen(
  method: string,
  id: JsonRpcId | null,
  params: Record<string, unknown> | undefined,
  grants: Grants,
  all: boolean,
  tasks: TaskScope | undefined,
): Verdict {
  const filter = params?.notifications;
  if (filter === undefined) return allow(method, id, undefined, undefined, undefined);
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    return invalid(method, id, 'params.notifications must be an object');
  }
  const variant = caseVariant(filter, NOTIFICATIONS_READ);
  if (variant !== undefined) return caseInvalid(method, id, 'params.notifications', variant);
  const { resourceSubscriptions: uris, taskIds } = filter as {
    resourceSubscriptions?: unknown;
    taskIds?: unknown;
  };
  if (uris !== undefined) {
    if (!Array.isArray(uris)) return invalid(method, id, 'resourceSubscriptions must be an array');
    for (const uri of uris) {
      if (!isName(uri)) return invalid(method, id, 'resourceSubscriptions must hold well-formed strings');
      if (!all && !resourceAllowed(grants, uri)) {
        return deny(method, id, 'ERR_RESOURCE_DENIED', `Resource ${uri} not found`, 'resource', uri);
      }
    }
  }
  if (taskIds !== undefined) {
    if (!Array.isArray(taskIds)) return invalid(method, id, 'taskIds must be an array');
    for (const taskId of taskIds) {
      if (!isName(taskId)) return invalid(method, id, 'taskIds must hold well-formed strings');
      if (!all && !ownsTask(tasks, taskId)) return taskDenied(method, id);
    }
  }
  return allow(method, id, undefined, undefined, undefined);
}

/**
 * 2025-11-25: a request whose `_meta["io.modelcontextprotocol/related-task"]` names a task is part of
 * that task, and the v1 SDK's server acts on it: the tool gets the task id (`extra.taskId`), the task
 * becomes `input_required` when the tool asks the client something, and the call's answer and the
 * requests and notifications it sends are queued for the task, delivered by its `tasks/result`.
 * Without a session (a stateless server sharing its task store) it does not check whose task it is.
 * So the task a request names there is judged as `tasks/get` judges one: the key's own, of a tool
 * it may still use, else the task does not exist for it. A value that names no task plainly (not an
 * object with a string `taskId`: a store keyed by text reads `1` as `"1"`) is invalid. Requests only:
 * a client's notification about a task names one the client runs itself (a sampling task the server
 * asked for), which the gateway never records, and servers read no task from a notification.
 */
function relatedTask(
  method: string,
  id: JsonRpcId | undefined,
  params: Record<string, unknown> | undefined,
  grants: Grants,
  tasks: TaskScope | undefined,
): Verdict | undefined {
  if (id === undefined || grants === ALLOW_ALL) return undefined;
  const meta = params?._meta;
  if (typeof meta !== 'object' || meta === null || !Object.hasOwn(meta, RELATED_TASK)) return undefined;
  const related = (meta as Record<string, unknown>)[RELATED_TASK];
  const taskId =
    typeof related === 'object' && related !== null && !Array.isArray(related)
      ? (related as { taskId?: unknown }).taskId
      : undefined;
  if (!isName(taskId) || caseVariant(related as object, TASK_READ) !== undefined) {
    return invalid(method, id, `params._meta["${RELATED_TASK}"].taskId must be a well-formed string`);
  }
  return ownsTask(tasks, taskId) ? undefined : taskDenied(method, id);
}

function ownsTask(tasks: TaskScope | undefined, taskId: string): boolean {
  return tasks !== undefined && tasks.owns(taskId);
}

/** A task the key did not create is answered as one that does not exist (the tasks spec's text). */
function taskDenied(method: string, id: JsonRpcId | null): Verdict {
  return deny(method, id, 'ERR_TASK_DENIED', 'Failed to retrieve task: Task not found', undefined, undefined);
}

/**
 * A resource URI is allowed when it matches the key's patterns as a string and is spelled plainly
 * (resource-uri.ts): `*` matches `/`, and upstreams resolve what a URI spells (dot segments, rooted
 * names, percent-encodings, Unicode compatibility forms), so without it `file:///public/../key`
 * would match `file:///public/*` and read outside it. It must also be a name (isName: no lone
 * surrogate, no control character; the WHATWG URL parser drops every tab and newline before it
 * parses, so `file:///public/.\t./key` is `file:///key` to it). A request is refused such a URI
 * before this is asked; a listed or read one an upstream sends is dropped here, or a client would
 * be shown the hidden resource it resolves to.
 */
export function resourceAllowed(grants: Grants, uri: string): boolean {
  return isName(uri) && grants.resource(uri) && plainResourceUri(uri);
}

/**
 * A name the policy can judge: a string without a lone surrogate (which UTF-8 encoders replace or
 * drop) and without control characters (which C-string upstreams truncate at), so that the name the
 * upstream acts on is the one judged.
 */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && (value as WellFormed).isWellFormed() && !CONTROL.test(value);
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/;

/** ES2024 `String.prototype.isWellFormed` (Node 20+; the project's lib is es2023). */
type WellFormed = string & { isWellFormed(): boolean };

/** Whether a request asks for (2025-11-25) or accepts (2026-07-28 extension) a task as its result. */
function createsTask(params: Record<string, unknown> | undefined): boolean {
  if (params === undefined) return false;
  const task = params.task;
  if (typeof task === 'object' && task !== null) return true;
  const meta = params._meta;
  if (typeof meta !== 'object' || meta === null) return false;
  const caps = (meta as Record<string, unknown>)[CLIENT_CAPABILITIES];
  if (typeof caps !== 'object' || caps === null) return false;
  // A key a case-folding upstream reads as `extensions` (Go's encoding/json v1: `"Extensions"`) may
  // declare the extension there, and its task was never counted (policy/unread-tasks.ts): the call
  // is taken as one that may create a task, whatever it holds.
  if (caseVariant(caps, EXTENSIONS) !== undefined) return true;
  const extensions = (caps as { extensions?: unknown }).extensions;
  return typeof extensions === 'object' && extensions !== null && Object.hasOwn(extensions, TASKS_EXTENSION);
}

type Target = 'tool' | 'prompt' | 'resource';

function allow(
  method: string | undefined,
  id: JsonRpcId | null,
  target: Target | undefined,
  name: string | undefined,
  filter: ResultFilter | undefined,
  recordTask = false,
): Verdict {
  const record: CallRecord = { rpc_method: method, rpc_id: id, decision: 'allow' };
  if (target !== undefined) record[target] = name;
  return { allowed: true, record, error: undefined, filter, recordTask };
}

function deny(
  method: string,
  id: JsonRpcId | null,
  code: ErrorCode,
  message: string,
  target: Target | undefined,
  name: string | undefined,
  params?: Record<string, unknown>,
): Verdict {
  const record: CallRecord = { rpc_method: method, rpc_id: id, decision: 'deny', reason: code };
  if (target !== undefined) record[target] = name;
  // 2026-07-28: a server answers a method it does not implement with HTTP 404.
  const status = code === 'ERR_METHOD_DENIED' && isModern(params) ? 404 : undefined;
  const error = new GatewayError(code, { message, rpcId: id, ...(status === undefined ? {} : { status }) });
  return { allowed: false, record, error, filter: undefined, recordTask: false };
}

/** The params members any rule reads (read-depth.ts). */
const PARAMS_READ = memberNames(PARAMS_MEMBERS_READ);
/** The members of a method the table does not know that are read (under `unknown_methods: allow`). */
const UNKNOWN_METHOD_READ = memberNames(['inputResponses', '_meta']);
const REF_READ = memberNames(['type', 'name', 'uri']);
const NOTIFICATIONS_READ = memberNames(['resourceSubscriptions', 'taskIds']);
const TASK_READ = memberNames(['taskId']);
const EXTENSIONS = memberNames(['extensions']);

/** A key an upstream may read as a member the judge reads (case-variants.ts: case, underscores). */
function caseInvalid(method: string, id: JsonRpcId | null, where: string, key: string): Verdict {
  return invalid(method, id, `${where}.${key} is another spelling of a member the gateway reads`);
}

function invalid(method: string, id: JsonRpcId | null, why: string): Verdict {
  const record: CallRecord = {
    rpc_method: method,
    rpc_id: id,
    decision: 'invalid',
    reason: 'ERR_INVALID_PARAMS',
  };
  const error = new GatewayError('ERR_INVALID_PARAMS', { message: `Invalid params: ${why}`, rpcId: id });
  return { allowed: false, record, error, filter: undefined, recordTask: false };
}

/**
 * A 2026-07-28 request (its per-request protocol version claim) for a method that revision does not
 * have (`initialize`, `ping`, `logging/setLevel`, `resources/subscribe`, `tasks/result`, ...; the tasks
 * extension's methods are kept). Judged as that revision does, before any allowlist, so the answer
 * is the one a 2026-07-28 upstream gives and does not depend on the key's grants.
 */
function removedIn(spec: MethodSpec, params: Record<string, unknown> | undefined): boolean {
  const meta = params?._meta;
  if (typeof meta !== 'object' || meta === null) return false;
  if ((meta as Record<string, unknown>)[PROTOCOL_VERSION] !== MODERN) return false;
  return !spec.revisions.includes(MODERN) && spec.tasksExtension !== true;
}

const MODERN: Revision = '2026-07-28';

/** A request carrying the 2026-07-28 per-request protocol version claim. */
function isModern(params: Record<string, unknown> | undefined): boolean {
  const meta = params?._meta;
  return (
    typeof meta === 'object' &&
    meta !== null &&
    typeof (meta as Record<string, unknown>)[PROTOCOL_VERSION] === 'string'
  );
}

/**
 * The table of every MCP method of revisions 2025-03-26 to 2026-07-28 (plus the 2026-07-28 tasks
 * extension, `io.modelcontextprotocol/tasks`) and how the gateway judges it when a client sends it.
 * judge.ts reads the rules; parse.ts reads KNOWN_METHODS (to refuse `Tools/Call`); the README
 * renders the table with renderMethodTable(), so documentation and behaviour cannot drift.
 */

export type Revision = '2025-03-26' | '2025-06-18' | '2025-11-25' | '2026-07-28';
export const REVISIONS: readonly Revision[] = ['2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28'];

/** The list responses the gateway filters, named after the array they hold. */
export type ListKind = 'tools' | 'prompts' | 'resources' | 'resourceTemplates' | 'tasks';
/**
 * What a result is filtered by: a list, or `contents` (a resources/read result keeps only the
 * contents of URIs the key may read).
 */
export type ResultFilter = ListKind | 'contents';

export type Rule =
  /** Forwarded: lifecycle, ping, logging level, client notifications. */
  | 'allow'
  /** Forwarded; the response is filtered to what the key may use (`list` names the array). */
  | 'list'
  /** `params.name` judged against the key's `allow` list. */
  | 'tool'
  /** `params.name` judged against the key's `prompts` list. */
  | 'prompt'
  /** `params.uri` judged against the key's `resources` list. */
  | 'resource'
  /** `params.ref`: `ref/prompt` judged as a prompt, `ref/resource` as a resource. */
  | 'completion'
  /** `subscriptions/listen`: every subscribed resource URI and task id is judged. */
  | 'listen'
  /** `params.taskId` must be a task this principal created. */
  | 'task'
  /** A method only servers send: denied when a client sends it. */
  | 'server-only';

export interface MethodSpec {
  readonly method: string;
  /** Who sends it on the wire. */
  readonly from: 'client' | 'server' | 'both';
  /** Core revisions that define it. */
  readonly revisions: readonly Revision[];
  /** Defined by the tasks extension of 2026-07-28 (not in that revision's core). */
  readonly tasksExtension?: true;
  readonly rule: Rule;
  /** For `list`: which result array is filtered. */
  readonly list?: ListKind;
}

const LEGACY: readonly Revision[] = ['2025-03-26', '2025-06-18', '2025-11-25'];
const ALL: readonly Revision[] = REVISIONS;
const MODERN: readonly Revision[] = ['2026-07-28'];
const R11: readonly Revision[] = ['2025-11-25'];

export const METHOD_TABLE: readonly MethodSpec[] = Object.freeze([
  // Lifecycle and utilities.
  { method: 'initialize', from: 'client', revisions: LEGACY, rule: 'allow' },
  { method: 'notifications/initialized', from: 'client', revisions: LEGACY, rule: 'allow' },
  { method: 'server/discover', from: 'client', revisions: MODERN, rule: 'allow' },
  { method: 'ping', from: 'both', revisions: LEGACY, rule: 'allow' },
  { method: 'notifications/cancelled', from: 'both', revisions: ALL, rule: 'allow' },
  { method: 'notifications/progress', from: 'both', revisions: ALL, rule: 'allow' },
  { method: 'notifications/roots/list_changed', from: 'client', revisions: LEGACY, rule: 'allow' },
  { method: 'logging/setLevel', from: 'client', revisions: LEGACY, rule: 'allow' },
  // Listing.
  { method: 'tools/list', from: 'client', revisions: ALL, rule: 'list', list: 'tools' },
  { method: 'prompts/list', from: 'client', revisions: ALL, rule: 'list', list: 'prompts' },
  { method: 'resources/list', from: 'client', revisions: ALL, rule: 'list', list: 'resources' },
  {
    method: 'resources/templates/list',
    from: 'client',
    revisions: ALL,
    rule: 'list',
    list: 'resourceTemplates',
  },
  // Calls.
  { method: 'tools/call', from: 'client', revisions: ALL, rule: 'tool' },
  { method: 'prompts/get', from: 'client', revisions: ALL, rule: 'prompt' },
  { method: 'resources/read', from: 'client', revisions: ALL, rule: 'resource' },
  { method: 'resources/subscribe', from: 'client', revisions: LEGACY, rule: 'resource' },
  { method: 'resources/unsubscribe', from: 'client', revisions: LEGACY, rule: 'resource' },
  { method: 'completion/complete', from: 'client', revisions: ALL, rule: 'completion' },
  { method: 'subscriptions/listen', from: 'client', revisions: MODERN, rule: 'listen' },
  // Tasks (2025-11-25 core; 2026-07-28 tasks extension).
  { method: 'tasks/get', from: 'both', revisions: R11, tasksExtension: true, rule: 'task' },
  { method: 'tasks/result', from: 'both', revisions: R11, rule: 'task' },
  { method: 'tasks/cancel', from: 'both', revisions: R11, tasksExtension: true, rule: 'task' },
  { method: 'tasks/update', from: 'client', revisions: [], tasksExtension: true, rule: 'task' },
  { method: 'tasks/list', from: 'both', revisions: R11, rule: 'list', list: 'tasks' },
  { method: 'notifications/tasks/status', from: 'both', revisions: R11, rule: 'allow' },
  // Sent by servers only.
  { method: 'sampling/createMessage', from: 'server', revisions: LEGACY, rule: 'server-only' },
  { method: 'roots/list', from: 'server', revisions: LEGACY, rule: 'server-only' },
  {
    method: 'elicitation/create',
    from: 'server',
    revisions: ['2025-06-18', '2025-11-25'],
    rule: 'server-only',
  },
  { method: 'notifications/message', from: 'server', revisions: ALL, rule: 'server-only' },
  { method: 'notifications/resources/updated', from: 'server', revisions: ALL, rule: 'server-only' },
  { method: 'notifications/resources/list_changed', from: 'server', revisions: ALL, rule: 'server-only' },
  { method: 'notifications/tools/list_changed', from: 'server', revisions: ALL, rule: 'server-only' },
  { method: 'notifications/prompts/list_changed', from: 'server', revisions: ALL, rule: 'server-only' },
  { method: 'notifications/elicitation/complete', from: 'server', revisions: R11, rule: 'server-only' },
  {
    method: 'notifications/subscriptions/acknowledged',
    from: 'server',
    revisions: MODERN,
    rule: 'server-only',
  },
  { method: 'notifications/tasks', from: 'server', revisions: [], tasksExtension: true, rule: 'server-only' },
] satisfies MethodSpec[]);

/** Canonical method name → its spec. */
export const METHODS: ReadonlyMap<string, MethodSpec> = new Map(METHOD_TABLE.map((m) => [m.method, m]));

/** Lower-case method name → canonical name, for parse.ts to refuse known methods in the wrong case. */
export const KNOWN_METHODS: ReadonlyMap<string, string> = new Map(
  METHOD_TABLE.map((m) => [m.method.toLowerCase(), m.method]),
);

const RULE_TEXT: Record<Rule, string> = {
  allow: 'allowed',
  list: 'allowed; the response lists only what the key may use',
  tool: '`params.name` must match the key\u2019s `allow`; one that may create a task (`params.task`, or the tasks extension declared) needs an id',
  prompt: '`params.name` must match the key\u2019s `prompts`',
  resource: '`params.uri` must match the key\u2019s `resources` and be [spelled plainly](#resource-uris)',
  completion:
    '`params.ref`: a `ref/prompt` name must match `prompts`, a `ref/resource` URI must match `resources`',
  listen:
    'every `resourceSubscriptions` URI must match `resources`; every `taskIds` entry must be the key\u2019s own task',
  task: '`params.taskId` must be a task created by the same key, with a tool the key may still use (else: unknown task)',
  'server-only': 'denied (only servers send it)',
};

function ruleText(m: MethodSpec): string {
  if (m.rule === 'list' && m.list === 'tasks')
    return 'allowed; the response lists only the key\u2019s own tasks (of tools it may still use)';
  return RULE_TEXT[m.rule];
}

function revisionText(m: MethodSpec): string {
  const parts: string[] = [];
  if (m.revisions.length > 0) {
    const first = m.revisions[0] as Revision;
    const last = m.revisions[m.revisions.length - 1] as Revision;
    parts.push(first === last ? first : `${first} \u2013 ${last}`);
  }
  if (m.tasksExtension) parts.push('2026-07-28 tasks extension');
  return parts.join('; ');
}

/**
 * The method table as Markdown, for the README. Deterministic: a test checks that the README
 * contains exactly this text.
 */
export function renderMethodTable(): string {
  const lines = [
    '| Method | Sent by | Revisions | Rule when a client sends it |',
    '| --- | --- | --- | --- |',
  ];
  for (const m of METHOD_TABLE) {
    lines.push(`| \`${m.method}\` | ${m.from} | ${revisionText(m)} | ${ruleText(m)} |`);
  }
  lines.push(
    '| a response (to a server request) | client | all | allowed; a roots answer (a `result` holding `roots`) reaches the upstream with only the roots the key\u2019s `roots` allow ([roots](#what-a-key-protects-and-what-it-does-not)) |',
  );
  lines.push(
    '| a method above that the request\u2019s revision does not have (a 2026-07-28 request, by its `_meta` protocol version) | client | \u2013 | `Method not found` (-32601, HTTP 404), as a server of that revision answers |',
  );
  lines.push(
    '| any other method | \u2013 | \u2013 | denied as `Method not found` (-32601), unless `policy.unknown_methods: allow` |',
  );
  return lines.join('\n') + '\n';
}

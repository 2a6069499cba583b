/**
 * Which kept numbers (lossless.ts) the gateway reads in a parsed request body, so that only those are
 * put into the parsed value (place-numbers.ts costs a pass over the bytes up to the last one placed,
 * and an object per number). The forwarded bytes never need them: they are the client's own, or
 * spliced from them (splice.ts); only the fallback re-serialisation needs every number placed, and
 * it parses the body again with all of them kept.
 *
 * What reads a parsed message, and how deep (1: a member of the message, 2: a member of one of its
 * members, such as `params.name`):
 * - validation (parse.ts): `id`, `jsonrpc`, `method`, `params`, `result`, `error` (depth 1); a kept
 *   number refuses an id, an unplaced `1.0` would pass as 1;
 * - the judge (policy/judge.ts): `params.name`, `uri`, `taskId`, `ref`, `notifications`, `task`,
 *   `_meta` (depth 2), where a kept number is an object and a double is not (`params.task: 1e400`
 *   asks for a task); below them only strings are looked for (`ref.type`, `_meta`'s protocol
 *   version and related task's id, `notifications.taskIds`), or an object's members (client
 *   capabilities), which a kept number, an object without members, does not have either: a number
 *   there decides alike placed or not;
 * - request tags (integrity/restore.ts): `id`, `params.requestId` (depth 2);
 * - header checks (policy/headers.ts): `params.name`/`uri`/`taskId`, `_meta`'s version (strings);
 *   `Mcp-Param-*` headers against every number in `params.arguments`, at any depth;
 * - the rate limit and timeouts: `params.name`; the audit: ids, `params.protocolVersion`, and, with
 *   `audit.log_arguments`, `params.arguments` at any depth.
 *
 * So numbers at depth 1 and 2 of each message are always placed, and deeper ones only when the
 * arguments are read (an `Mcp-Param-*` header, or the audit logs arguments): the caller says so.
 * The same reading decides what JSON.parse builds (skeleton.ts): a message's `params.arguments`,
 * and the long strings in them, only when the arguments are read.
 * A differential test (test/unit/pipeline/inspect-numbers.test.ts) holds every decision and
 * forwarded byte equal to placing every number.
 */

/**
 * The members of a message's `params` some rule reads (the judge, task recording, request tags,
 * header checks, the rate limit, timeouts, the audit): every other member's object or array value is
 * left out of JSON.parse (unread-spans.ts) and reaches the parsed value as a placeholder string, and
 * a key that only differs from one of these by case is refused (policy/case-variants.ts).
 * `arguments` is left out too when the caller does not read them.
 */
export const PARAMS_READ: readonly string[] = Object.freeze([
  'name',
  'uri',
  'taskId',
  'ref',
  'notifications',
  'task',
  '_meta',
  'arguments',
  'requestId',
  'protocolVersion',
  // A list request's cursor: opened and replaced (integrity/cursors.ts), so a variant such as
  // `Cursor` must not reach an upstream that matches keys by case.
  'cursor',
  // 2026-07-28: a retried request's answers to the server's input requests, roots among them
  // (policy/roots.ts), so a variant such as `input_responses` must not reach a pydantic upstream.
  'inputResponses',
]);

/**
 * The members of `params._meta` some rule reads (the judge, header checks, request tags), and
 * `progressToken`, which none reads but is kept built so that the audit or a later rule may.
 */
export const META_READ: readonly string[] = Object.freeze([
  'io.modelcontextprotocol/protocolVersion',
  'io.modelcontextprotocol/clientCapabilities',
  'io.modelcontextprotocol/subscriptionId',
  'io.modelcontextprotocol/related-task',
  'progressToken',
]);

/** Depth (within a message) down to which kept numbers are always placed. */
export const READ_DEPTH = 2;

/**
 * The kept numbers at `lossy` (start and end offsets) that lie at most READ_DEPTH deep in their
 * message; `depths` counts containers from the body's top (a batch's array adds one).
 */
export function numbersRead(lossy: ArrayLike<number>, depths: ArrayLike<number>, batch: boolean): number[] {
  const limit = READ_DEPTH + (batch ? 1 : 0);
  const out: number[] = [];
  for (let k = 0; k < depths.length; k++) {
    if ((depths[k] as number) <= limit) out.push(lossy[2 * k] as number, lossy[2 * k + 1] as number);
  }
  return out;
}

/**
 * Step: inspect and judge a POST body. Parse once (strictly), check the 2026-07-28 request headers
 * against the body, judge every message against the principal's grants, and forward exactly the
 * bytes that were judged. A denied call is answered by the gateway as if the tool did not exist;
 * a batch with any denied element is refused whole (no element is forwarded).
 */
import { isRevision } from './protocol-version.ts';
import type { InspectStep } from './ports.ts';
import { BODY_LIMITS, parseBody } from '../jsonrpc/parse.ts';
import { errorBody, isRequest } from '../jsonrpc/message.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../policy/methods.ts';
import { checkMcpHeaders, hasParamHeaders, mcpHeaders } from '../policy/headers.ts';
import { judge } from '../policy/judge.ts';
import type { JudgeOptions } from '../policy/judge.ts';
import type { TaskOwnership } from '../policy/tasks.ts';
import type { ResponseAction } from '../policy/filter-list.ts';
import type { Pinning } from '../pinning/pins.ts';
import { openRequestCursors } from '../integrity/cursors.ts';
import type { Cursors } from '../integrity/cursors.ts';
import { ALLOW_ALL } from '../policy/grants.ts';
import { carriesRoots, lendRoots } from '../policy/roots.ts';
import type { Withheld } from '../policy/roots.ts';

export interface InspectOptions extends JudgeOptions {
  readonly tasks: TaskOwnership;
  /** `audit.log_arguments`: the audit reads tool arguments, kept numbers included, at any depth. */
  readonly auditArguments?: boolean | undefined;
  /** Tool-definition pinning, when on (judge reads it as `pins`). */
  readonly pinning?: Pinning | undefined;
  /** Opens the sealed cursors of list requests (integrity/cursors.ts); none: cursors pass as sent. */
  readonly cursors?: Cursors | undefined;
}

const BATCH_REFUSED = new GatewayError('ERR_BATCH_DENIED');

export function createInspect(options: InspectOptions): InspectStep {
  const { tasks, pinning, cursors } = options;
  const auditArguments = options.auditArguments ?? true;
  const judgeOptions: JudgeOptions = { ...options, pins: pinning };
  return function inspect(ctx, body) {
    const headers = mcpHeaders(ctx.req.rawHeaders);
    // Kept numbers below a message's members' members are read only by the audit of arguments and
    // by Mcp-Param-* checks (jsonrpc/read-depth.ts): put in the parsed value only for them.
    const parsed = parseBody(body, KNOWN_METHODS, BODY_LIMITS, auditArguments || hasParamHeaders(headers));
    const { messages, batch } = parsed;
    ctx.messages = messages;
    ctx.batch = batch;
    if (ctx.protocolVersion === undefined) ctx.protocolVersion = offeredVersion(messages[0]);
    // Every value of each Mcp-* header (as req.headersDistinct has them): Node joins a repeated
    // Mcp-Name with ", ", which could then equal the body.
    const headerError = checkMcpHeaders(headers, batch ? messages : (messages[0] as (typeof messages)[0]));
    if (headerError !== undefined) {
      ctx.reason = headerError.code;
      throw headerError;
    }
    if (batch) refuseRepeatedIds(messages);
    const principal = ctx.principal;
    if (principal === undefined) throw new TypeError('inspect before authenticate');
    const scope = tasks.scope(principal.bindingId, principal.grants);
    let plan: Map<JsonRpcId, ResponseAction> | undefined;
    let denied: Map<JsonRpcId | null, GatewayError> | undefined;
    let firstDenial: ErrorCode | undefined;
    // Whether a refusal was a denial, not only a message the judge could not read (`invalid`).
    let policyDenied = false;
    // Whether a message hands the upstream roots (policy/roots.ts): only a response, or a request
    // holding `inputResponses`, is looked at; without authentication every root is lent as sent.
    let roots = false;
    const lends = principal.grants !== ALLOW_ALL;
    for (const message of messages) {
      const verdict = judge(message, principal.grants, judgeOptions, scope);
      ctx.calls.push(verdict.record);
      if (lends && !roots && (verdict.record.rpc_method === undefined || mayCarryRoots(message)))
        roots = carriesRoots(message);
      const id = isRequest(message) ? message.id : null;
      if (!verdict.allowed) {
        firstDenial ??= verdict.error?.code ?? 'ERR_METHOD_DENIED';
        if (verdict.record.decision !== 'invalid') policyDenied = true;
        (denied ??= new Map()).set(id, verdict.error ?? new GatewayError('ERR_METHOD_DENIED'));
        continue;
      }
      if (id !== null && (verdict.filter !== undefined || verdict.recordTask)) {
        (plan ??= new Map()).set(id, verdict.filter ?? { tool: verdict.record.tool });
      }
    }
    if (denied !== undefined) {
      // As the audit records a message the parse refused: a malformed `params` (a `"Name"` beside no
      // name, a ref that is not an object) is `invalid`, not a denial by the key's lists.
      ctx.decision = policyDenied ? 'deny' : 'invalid';
      ctx.reason = batch ? 'ERR_BATCH_DENIED' : firstDenial;
      return { bytes: parsed.bytes, answer: denialAnswer(messages, batch, denied), plans: undefined };
    }
    // A roots answer reaches the upstream with only the roots the key may lend, re-serialised.
    let judged = parsed.bytes;
    const withheld: Withheld = { count: 0, uris: [] };
    if (roots) judged = lendRoots(judged, principal.grants, withheld);
    // A list request's cursor reaches the upstream as the upstream wrote it, or not at all.
    const bytes =
      cursors === undefined || plan === undefined
        ? judged
        : openRequestCursors(judged, messages, plan, principal.bindingId, cursors);
    // Noted only once the body is let through: the line says what was left out of what the upstream
    // got, and a body refused for a cursor (as one refused for a denial) gave it nothing.
    if (withheld.count > 0) ctx.rootsWithheld = withheld;
    return { bytes, answer: undefined, plans: plan };
  };
}

/** A request or notification that may hold 2026-07-28 `inputResponses` (carriesRoots reads them). */
function mayCarryRoots(message: ReturnType<typeof parseBody>['messages'][number]): boolean {
  const params = (message as { params?: Record<string, unknown> }).params;
  return params !== undefined && params.inputResponses !== undefined;
}

/**
 * A batch whose requests share an id is refused: their responses cannot be told apart, so the
 * upstream's answer to one (say prompts/list) would be filtered by the plan of the other (tools/list)
 * and pass unfiltered. `1` and `"1"` count as the same id, in case an upstream does not tell them apart.
 */
function refuseRepeatedIds(messages: ReturnType<typeof parseBody>['messages']): void {
  const seen = new Set<string>();
  for (const message of messages) {
    if (!isRequest(message)) continue;
    const key = String(message.id);
    if (seen.has(key)) {
      throw new GatewayError('ERR_INVALID_REQUEST', {
        message: 'invalid request: a batch repeats a request id',
        rpcId: message.id,
      });
    }
    seen.add(key);
  }
}

/**
 * A single denied request gets the error an upstream gives for something that does not exist. In
 * a batch, each denied request gets that error and every other request a "batch refused" error,
 * so the client can match each id; nothing of the batch reaches the upstream.
 */
function denialAnswer(
  messages: ReturnType<typeof parseBody>['messages'],
  batch: boolean,
  denied: Map<JsonRpcId | null, GatewayError>,
): { status: number; body: string } {
  const parts: string[] = [];
  for (const message of messages) {
    if (!isRequest(message)) continue;
    const error = denied.get(message.id) ?? BATCH_REFUSED;
    if (!batch) return { status: error.status, body: errorBody(message.id, error.rpcCode, error.message) };
    parts.push(errorBody(message.id, error.rpcCode, error.message));
  }
  // Only notifications were denied: accepted and dropped, as a server ignores notifications it
  // does not know (the audit line still says deny).
  if (parts.length === 0) return { status: 202, body: '' };
  return { status: 200, body: `[${parts.join(',')}]` };
}

/** `initialize` carries the client's protocol version in its params, not in a header. */
function offeredVersion(
  message: ReturnType<typeof parseBody>['messages'][number] | undefined,
): string | undefined {
  if (message === undefined || !('method' in message) || message.method !== 'initialize') return undefined;
  const version = message.params?.protocolVersion;
  return isRevision(version) ? version : undefined;
}

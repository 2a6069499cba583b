/**
 * Request tags: the JSON-RPC id the gateway gives each request it forwards, in place of the
 * client's. A tag carries, signed for the principal, the client's id (its exact type and value) and
 * what the response needs (its plan: the list to filter, a task to record, or nothing), so a
 * response can be matched to a request the gateway forwarded and filtered as that request's verdict
 * said, statelessly: on any replica that shares the secret, on a live POST stream and on a GET
 * stream replayed with `Last-Event-ID`. An id the gateway did not sign for this principal, or one
 * that was changed, does not untag.
 *
 *   tag = "g1" + plan + nonce + "." + client id [+ "." + tool] + "." + base64url(HMAC-SHA256(k, bindingId "\n" body)[0..12])
 *
 * where body is everything before the last ".", the plan is one letter (PLAN_LETTERS, and `a` for a
 * task-creating call, which adds base64url(UTF-8) of its tool's name: task ownership judges the task
 * by that tool, policy/tasks.ts; `c`, a task without its tool, is what builds before wrote), the nonce is
 * a per-process random prefix plus a counter (two requests with the same client id never share a
 * tag, so their responses cannot cross), and the client id is `n` + its decimal digits for a number,
 * `s` + base64url(UTF-8) for a well-formed string, `u` + base64url(UTF-16LE) for a string with a
 * lone surrogate (kept exactly). k = HMAC-SHA256(secret, LABEL): the session secret keys this and the
 * session binding without one MAC being replayable as the other. Cost: one HMAC per tag or untag,
computed from precomputed padded keys (hmac.ts: the same bytes as createHmac, about a third of its
cost), so tags are unchanged from the builds that used createHmac and replicas of either verify
each other's.
 *
 * This module and match.ts are the stable API other transports use (see the example in match.ts).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import type { ResultFilter } from '../policy/methods.ts';
import { createBindingMac } from './hmac.ts';

/**
 * What a response needs: a list to filter, a task id to record for the principal (with the tool
 * whose call creates it), or nothing.
 */
export type Plan = 'none' | ResultFilter | TaskPlan;

/** A task-creating call's plan. `tool` is undefined only in a tag of a build that did not carry it. */
export interface TaskPlan {
  readonly tool: string | undefined;
  /**
   * On a plan untag() read: the call the tag names (callOf), so the answer that carries it settles
   * that call's unread answer (policy/unread-tasks.ts). Unset on a plan given to tag().
   */
  readonly call?: string | undefined;
}

/** What a valid tag carries. */
export interface Untagged {
  /** The id the client sent (and gets back), with its type. */
  readonly clientId: JsonRpcId;
  readonly plan: Plan;
}

export interface RequestTagger {
  /** A fresh tag for a request the gateway forwards for `bindingId`. */
  tag(bindingId: string, clientId: JsonRpcId, plan: Plan): string;
  /** What `id` carries, or undefined unless it is a tag this gateway signed for `bindingId`. */
  untag(bindingId: string, id: unknown): Untagged | undefined;
}

export const TAG_PREFIX = 'g1';
const LABEL = 'mcpgate request tag v1';
const MAC_BYTES = 12;
export const MAC_CHARS = 16; // base64url of 12 bytes
/** Longest tag untag() looks at (a client id is bounded by the body limit; tags of huge ids fail). */
export const MAX_TAG_CHARS = 16 * 1024;

const PLAN_LETTERS: Readonly<Record<Exclude<Plan, TaskPlan>, string>> = {
  none: 'n',
  tools: 't',
  prompts: 'p',
  resources: 'r',
  resourceTemplates: 'm',
  tasks: 'k',
  contents: 'd',
};
const PLANS = new Map<string, Plan>(
  Object.entries(PLAN_LETTERS).map(([plan, letter]) => [letter, plan as Plan]),
);
/** A task-creating call's tag, with its tool after the client id. */
const TASK_TOOL = 'a';
/** A task-creating call's tag without its tool (builds before TASK_TOOL; still read). */
const TASK_LEGACY = 'c';

export interface TaggerOptions {
  /** Randomness for the per-process nonce prefix (tests pass a fixed one). */
  readonly random?: (n: number) => Buffer;
}

/** @param secret at least 32 bytes; replicas that share it untag each other's tags. */
export function createRequestTagger(secret: Buffer, options: TaggerOptions = {}): RequestTagger {
  if (!Buffer.isBuffer(secret) || secret.length < 32)
    throw new TypeError('the request tag secret must be at least 32 bytes');
  const mac = createBindingMac(createHmac('sha256', secret).update(LABEL).digest(), MAC_BYTES);
  // The compared MACs as UTF-16 (lossless for any string, where latin1 keeps only each unit's low
  // byte and would let other spellings of a MAC compare equal); written, never allocated, per untag.
  const expected = Buffer.alloc(MAC_CHARS * 2);
  const given = Buffer.alloc(MAC_CHARS * 2);
  const prefix = (options.random ?? randomBytes)(6).toString('base64url');
  let counter = 0;

  return {
    tag(bindingId, clientId, plan) {
      let letter: string | undefined;
      let tool = '';
      if (typeof plan === 'object') {
        if (plan.tool === undefined) letter = TASK_LEGACY;
        else {
          letter = TASK_TOOL;
          tool = `.${Buffer.from(plan.tool, 'utf8').toString('base64url')}`;
        }
      } else letter = PLAN_LETTERS[plan];
      if (letter === undefined) throw new TypeError(`unknown plan ${String(plan)}`);
      counter = counter >= Number.MAX_SAFE_INTEGER ? 0 : counter + 1;
      const body = `${TAG_PREFIX}${letter}${prefix}${counter.toString(36)}.${encodeId(clientId)}${tool}`;
      return `${body}.${mac(bindingId, body)}`;
    },
    untag(bindingId, id) {
      if (typeof id !== 'string' || id.length > MAX_TAG_CHARS || !id.startsWith(TAG_PREFIX)) return undefined;
      const last = id.length - MAC_CHARS - 1;
      if (last < 0 || id.charCodeAt(last) !== 0x2e) return undefined;
      const body = id.slice(0, last);
      expected.write(mac(bindingId, body), 'utf16le');
      given.write(id.slice(last + 1), 'utf16le');
      if (!timingSafeEqual(given, expected)) return undefined;
      return decodeBody(body);
    },
  };
}

/**
 * The call a tag names: its nonce (everything before the first "."), unique to one forwarded request
 * of one process (the per-process prefix and a counter) and short whatever the client's id. A string
 * that is no tag names itself.
 */
export function callOf(tag: string): string {
  const dot = tag.indexOf('.');
  return dot === -1 ? tag : tag.slice(0, dot);
}

/**
 * Whether `id` may be a task-creating call's tag, by its plan letter alone (no MAC checked: a filter
 * before untag(), which decides).
 */
export function mayBeTaskTag(id: string): boolean {
  return (
    id.startsWith(TAG_PREFIX) &&
    (id[TAG_PREFIX.length] === TASK_TOOL || id[TAG_PREFIX.length] === TASK_LEGACY)
  );
}

/**
 * What a tag says it carries, WITHOUT checking its MAC: for logs and tests only, never to decide
 * anything (use untag()).
 */
export function readTagUnverified(id: string): Untagged | undefined {
  if (!id.startsWith(TAG_PREFIX) || id.length > MAX_TAG_CHARS) return undefined;
  const last = id.lastIndexOf('.');
  return last === -1 ? undefined : decodeBody(id.slice(0, last));
}

function encodeId(id: JsonRpcId): string {
  if (typeof id === 'number') {
    if (!Number.isSafeInteger(id)) throw new TypeError('a request id number must be a safe integer');
    return `n${id}`;
  }
  if (typeof id !== 'string') throw new TypeError('a request id must be a string or a number');
  return (id as WellFormed).isWellFormed()
    ? `s${Buffer.from(id, 'utf8').toString('base64url')}`
    : `u${Buffer.from(id, 'utf16le').toString('base64url')}`;
}

/** Decodes a body the MAC vouched for (so it is one tag() wrote). */
function decodeBody(body: string): Untagged | undefined {
  const letter = body.charAt(TAG_PREFIX.length);
  const dot = body.indexOf('.');
  if (dot === -1) return undefined;
  let plan: Plan | undefined;
  let end = body.length;
  if (letter === TASK_TOOL) {
    end = body.indexOf('.', dot + 1);
    if (end === -1) return undefined;
    plan = { tool: Buffer.from(body.slice(end + 1), 'base64url').toString('utf8'), call: body.slice(0, dot) };
  } else plan = letter === TASK_LEGACY ? { tool: undefined, call: body.slice(0, dot) } : PLANS.get(letter);
  if (plan === undefined) return undefined;
  const kind = body.charAt(dot + 1);
  const text = body.slice(dot + 2, end);
  let clientId: JsonRpcId;
  if (kind === 'n') clientId = Number(text);
  else if (kind === 's') clientId = Buffer.from(text, 'base64url').toString('utf8');
  else if (kind === 'u') clientId = Buffer.from(text, 'base64url').toString('utf16le');
  else return undefined;
  return { clientId, plan };
}

/** ES2024 `String.prototype.isWellFormed` (Node 20+; the project's lib is es2023). */
type WellFormed = string & { isWellFormed(): boolean };

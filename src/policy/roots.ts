/**
 * The roots a principal lends the upstream. A client's roots (2025-06-18 and 2025-11-25: its answer
 * to the upstream's `roots/list`, `{"roots":[{"uri":"file:///…","name":…}]}`; 2026-07-28: the same
 * result in a retried request's `params.inputResponses`) tell a server where it may work, and some
 * servers take them in place of their own settings (`@modelcontextprotocol/server-filesystem`
 * replaces its configured directories with them). Passed as sent, they would let any key allowed such
 * a server's file tools reach whatever its client names. So a roots answer reaches the upstream with
 * only the roots whose `uri` the principal's `roots` patterns match, spelled plainly as a resource
 * URI must be (resource-uri.ts); deny by default.
 *
 * A roots answer is known by its shape, not by the request it answers (the gateway does not know the
 * upstream's request ids): a response whose `result` holds `roots`, as the strict parse reads keys
 * (escapes decoded, the last of repeated keys), or a key a case-folding decoder reads as it
 * (`Roots`, `rootſ`: Go's encoding/json), whose roots are withheld whole; in an `inputResponses`
 * entry, under `result` or another spelling of it (`Result`), left out the same way. An entry that
 * is not an object with a string `uri`, or that holds another spelling of `uri` (`URI`), is withheld; a
 * `roots` that is not an array becomes `[]`. The message is re-serialised from a parse that keeps
 * every number's spelling and builds every string, so the upstream gets exactly the judged list.
 */
import type { Grants } from './grants.ts';
import { isName } from './judge.ts';
import { plainResourceUri } from './resource-uri.ts';
import { caseVariant, ENTRY_MEMBERS, isVariant, memberNames } from './case-variants.ts';
import { KNOWN_METHODS } from './methods.ts';
import { BODY_LIMITS, parseBody } from '../jsonrpc/parse.ts';
import type { JsonRpcMessage } from '../jsonrpc/message.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';

/** Most withheld roots one audit line names (the count is always exact). */
export const MAX_WITHHELD_LISTED = 20;
/** How the audit names a withheld entry that names no root (not an object with a string `uri`). */
export const NOT_A_ROOT = '[not a root]';

/** What a request's roots answers withheld: how many, and the first MAX_WITHHELD_LISTED. */
export interface Withheld {
  count: number;
  readonly uris: string[];
}

const ROOTS = memberNames(['roots']);
const RESULT = memberNames(['result']);

/** A root the principal may lend: its patterns match the URI, and it is spelled plainly. */
export function rootAllowed(grants: Grants, uri: unknown): boolean {
  return isName(uri) && grants.root(uri) && plainResourceUri(uri);
}

/** Whether `result` is a roots answer: an object holding `roots`, or another spelling of it. */
export function holdsRoots(result: unknown): result is Record<string, unknown> {
  if (!isPlainObject(result)) return false;
  return Object.hasOwn(result, 'roots') || caseVariant(result, ROOTS) !== undefined;
}

/**
 * Whether a parsed message hands the upstream roots: a response whose result is a roots answer, or
 * a request (2026-07-28) whose `params.inputResponses` holds one (or one under `result`, as drafts
 * of that revision wrapped it).
 */
export function carriesRoots(message: JsonRpcMessage): boolean {
  const m = message as { method?: unknown; params?: unknown; result?: unknown };
  if (m.method === undefined) return holdsRoots(m.result);
  const responses = isPlainObject(m.params) ? m.params.inputResponses : undefined;
  if (typeof responses !== 'object' || responses === null) return false;
  for (const value of Object.values(responses)) if (entryHoldsRoots(value)) return true;
  return false;
}

/**
 * Whether an `inputResponses` entry holds a roots answer: bare, under `result`, or under another
 * spelling of `result` (`Result`, `reſult`), which a case-folding decoder (Go's encoding/json) reading
 * the wrapped shape takes for `result`.
 */
function entryHoldsRoots(value: unknown): boolean {
  if (holdsRoots(value)) return true;
  if (!isPlainObject(value)) return false;
  if (holdsRoots(value.result)) return true;
  for (const key of Object.keys(value)) if (isVariant(key, RESULT) && holdsRoots(value[key])) return true;
  return false;
}

/**
 * The bytes to forward for a judged body some message of which carries roots (carriesRoots): the
 * body parsed again with every number kept as written and every string built, each roots answer in
 * it cut to the roots the principal may lend, and serialised. Adds what was withheld to `withheld`.
 */
export function lendRoots(body: Buffer, grants: Grants, withheld: Withheld): Buffer {
  const { messages, batch } = parseBody(body, KNOWN_METHODS, BODY_LIMITS, true, Infinity);
  for (const message of messages) lendIn(message as unknown as Record<string, unknown>, grants, withheld);
  return Buffer.from(JSON.stringify(batch ? messages : messages[0]));
}

/** Cuts each roots answer `message` carries, in place. */
function lendIn(message: Record<string, unknown>, grants: Grants, withheld: Withheld): void {
  if (message.method === undefined) {
    if (holdsRoots(message.result)) message.result = lent(message.result, grants, withheld);
    return;
  }
  const params = message.params;
  const responses = isPlainObject(params) ? params.inputResponses : undefined;
  if (typeof responses !== 'object' || responses === null) return;
  const map = responses as Record<string, unknown>;
  for (const key of Object.keys(map)) {
    let value = map[key];
    if (holdsRoots(value)) value = map[key] = lent(value, grants, withheld);
    if (!isPlainObject(value)) continue;
    if (holdsRoots(value.result)) value.result = lent(value.result, grants, withheld);
    // Another spelling of `result` holding roots is left out, its roots withheld, as one of `roots` is.
    for (const other of Object.keys(value)) {
      const wrapped = value[other];
      if (!isVariant(other, RESULT) || !holdsRoots(wrapped)) continue;
      lent(wrapped, NONE, withheld);
      delete value[other];
    }
  }
}

/** Lends nothing: what a spelling no rule reads holds is withheld whole. */
const NONE = (): boolean => false;

/** A roots answer as the upstream may get it: its members, `roots` judged, other spellings of it left out. */
function lent(
  result: Record<string, unknown>,
  grants: Grants | ((uri: string) => boolean),
  withheld: Withheld,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(result)) {
    const value = result[key];
    if (key === 'roots') out.roots = judgeRoots(value, grants, withheld);
    else if (isVariant(key, ROOTS)) judgeRoots(value, NONE, withheld);
    else out[key] = value;
  }
  return out;
}

/** The roots of `roots` the principal may lend, in order; the others are noted in `withheld`. */
export function judgeRoots(
  roots: unknown,
  grants: Grants | ((uri: string) => boolean),
  withheld: Withheld,
): unknown[] {
  if (!Array.isArray(roots)) {
    note(withheld, undefined);
    return [];
  }
  const allowed = typeof grants === 'function' ? grants : (uri: string) => rootAllowed(grants, uri);
  const kept: unknown[] = [];
  for (const entry of roots) {
    const uri = isPlainObject(entry) ? entry.uri : undefined;
    const named = typeof uri === 'string' && caseVariant(entry as object, ENTRY_MEMBERS.uri) === undefined;
    if (named && allowed(uri)) kept.push(entry);
    else note(withheld, typeof uri === 'string' ? uri : undefined);
  }
  return kept;
}

function note(withheld: Withheld, uri: string | undefined): void {
  withheld.count++;
  if (withheld.uris.length < MAX_WITHHELD_LISTED) withheld.uris.push(uri ?? NOT_A_ROOT);
}

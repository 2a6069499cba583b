/**
 * Members the judge reads, and keys an upstream's decoder reads as one of them though they are
 * not it. JSON.parse and the judge read `name` exactly; but
 * - Go's encoding/json (v1) fills a struct field from any key equal to its name under case folding
 *   (`Name`, `NAME`, `naſe`... with `ſ` as `s` and the Kelvin sign as `k`);
 * - the Python SDK's models (pydantic, `alias_generator=to_camel, populate_by_name=True`) fill a
 *   field from its camelCase alias or its snake_case name (`task_id` for `taskId`,
 *   `resource_subscriptions`, `request_id`), and `_meta` from `meta` (its field's name).
 * Two such keys in one object that fold alike are refused by the parse (jsonrpc/tree.ts); a lone
 * variant is caught here: `{"Name":"rm_rf"}` in `params` is judged as a call with no name by the
 * gateway, but is a call of rm_rf to such an upstream. So in each object the judge reads a member
 * of, a key that folds to one of those members, underscores left out, without being it makes the
 * request invalid (where both spellings stand, pydantic reads the alias, the member judged; the
 * variant is refused all the same: an allowlist, not a guess at each decoder's order).
 */
import { foldKey, mayFold } from '../jsonrpc/tree.ts';

export interface MemberNames {
  readonly exact: ReadonlySet<string>;
  /** The names as variantKey gives them. */
  readonly folded: ReadonlySet<string>;
}

export function memberNames(names: readonly string[]): MemberNames {
  return Object.freeze({ exact: new Set(names), folded: new Set(names.map(variantKey)) });
}

/** The first key of `o` that folds to one of `names` without being it, or undefined. */
export function caseVariant(o: object, names: MemberNames): string | undefined {
  for (const key in o) if (isVariant(key, names)) return key;
  return undefined;
}

/** A key case-folded (foldKey) with its underscores left out. */
function variantKey(key: string): string {
  // A key of lower-case ASCII without an underscore is its own (no allocation for the common key).
  const folded = mayFold(key) ? foldKey(key) : key;
  return folded.includes('_') ? folded.replaceAll('_', '') : folded;
}

/** Whether `key` is not one of `names` but a decoder that folds case or underscores reads it as one. */
export function isVariant(key: string, names: MemberNames): boolean {
  return !names.exact.has(key) && names.folded.has(variantKey(key));
}

/**
 * isVariant of the key whose JSON text, quotes included, is b[start, end): no string is made for a
 * key of lower-case ASCII without an underscore or an escape (it is its own).
 */
export function isVariantAt(b: Uint8Array, start: number, end: number, names: MemberNames): boolean {
  let plain = true;
  for (let k = start + 1; k < end - 1 && plain; k++) {
    const c = b[k] as number;
    if ((c >= 0x41 && c <= 0x5a) || c >= 0x80 || c === 0x5f || c === 0x5c) plain = false;
  }
  if (plain) return false;
  const text = Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('utf8');
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    return true;
  }
  return typeof key !== 'string' || isVariant(key, names);
}

/**
 * Members of a JSON-RPC message, and of a list result, that a client reads: in an upstream's answer,
 * a key another client's decoder reads as one of them (`"Result"`, `"Tools"`, `"toolſ"`,
 * `"next_cursor"`, `"CacheScope"`, `"TTLMs"`) would carry what the gateway never judged (an
 * unfiltered, unpinned list, a caching scope wider than the key's, a ttl without the scope the
 * gateway gives one: policy/filter-list.ts).
 */
export const MESSAGE_MEMBERS = memberNames(['jsonrpc', 'id', 'method', 'params', 'result', 'error']);
export const LIST_RESULT_MEMBERS = memberNames([
  'tools',
  'prompts',
  'resources',
  'resourceTemplates',
  'tasks',
  'nextCursor',
  'cacheScope',
  'ttlMs',
]);

/**
 * The member a list entry, or a resources/read content, is judged by (`name`, `uri`, `uriTemplate`,
 * `taskId`). An entry that also holds a key a case-folding client reads as that member
 * (`{"name":"echo","namE":"<hidden>"}`: Go's encoding/json v1 fills the field from the last key that
 * folds to it) would show that client a name the gateway never judged: such an entry is dropped.
 */
export const ENTRY_MEMBERS = {
  name: memberNames(['name']),
  uri: memberNames(['uri']),
  uriTemplate: memberNames(['uriTemplate']),
  taskId: memberNames(['taskId']),
} as const;

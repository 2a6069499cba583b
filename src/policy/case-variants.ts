/**
 * Members the judge reads, and keys that only differ from them by case. JSON.parse and the judge
 * read `name` exactly; Go's encoding/json (v1) fills a struct field from any key equal to its name
 * under case folding (`Name`, `NAME`, `naſe`... with `ſ` as `s` and the Kelvin sign as `k`). Two
 * such keys in one object are refused by the parse (jsonrpc/tree.ts); a lone variant is caught here:
 * `{"Name":"rm_rf"}` in `params` is judged as a call with no name by the gateway, but is a call of
 * rm_rf to such an upstream. So in each object the judge reads a member of, a key that folds to
 * one of those members without being it makes the request invalid.
 */
import { foldKey, mayFold } from '../jsonrpc/tree.ts';

export interface MemberNames {
  readonly exact: ReadonlySet<string>;
  /** The names as foldKey gives them. */
  readonly folded: ReadonlySet<string>;
}

export function memberNames(names: readonly string[]): MemberNames {
  return Object.freeze({ exact: new Set(names), folded: new Set(names.map(foldKey)) });
}

/** The first key of `o` that folds to one of `names` without being it, or undefined. */
export function caseVariant(o: object, names: MemberNames): string | undefined {
  for (const key in o) {
    if (names.exact.has(key)) continue;
    // A key of lower-case ASCII folds to itself (no allocation for the common key).
    if (names.folded.has(mayFold(key) ? foldKey(key) : key)) return key;
  }
  return undefined;
}

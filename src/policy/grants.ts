/**
 * What one principal may use: compiled once at start from a key's lists (or an OAuth scope map).
 * A Grants object never changes, and each of its functions answers by its argument alone: the list
 * path remembers what a Grants object kept of a catalogue (integrity/list-match.ts), and a reload
 * compiles new objects.
 */
import { compileMatcher } from './glob.ts';

export interface Grants {
  readonly tool: (name: string) => boolean;
  readonly prompt: (name: string) => boolean;
  readonly resource: (uri: string) => boolean;
  /**
   * A root the principal's client may lend the upstream (policy/roots.ts): a URI matching its
   * `roots` patterns. None by default: a roots-aware server may take the roots it is lent in place
   * of its own directories.
   */
  readonly root: (uri: string) => boolean;
  /** Every tool (`allow` holds `*`): tools/list needs no filtering, so it streams untouched. */
  readonly everyTool?: boolean;
  /** Every prompt (`prompts` holds `*`). */
  readonly everyPrompt?: boolean;
}

/** Everything allowed: only for `auth.allow_unauthenticated`. */
export const ALLOW_ALL: Grants = Object.freeze({
  tool: () => true,
  prompt: () => true,
  resource: () => true,
  root: () => true,
  everyTool: true,
  everyPrompt: true,
});

/** A key's lists as the config holds them (each defaults to `[]`: deny by default). */
export interface GrantLists {
  readonly allow: readonly string[];
  readonly prompts: readonly string[];
  readonly resources: readonly string[];
  /** Root URI patterns the principal's client may lend the upstream (absent: none). */
  readonly roots?: readonly string[] | undefined;
}

/**
 * Compiles a key's `allow` (tool names), `prompts`, `resources` and `roots` lists; see glob.ts for
 * patterns.
 */
export function compileGrants(key: GrantLists): Grants {
  return Object.freeze({
    tool: compileMatcher(key.allow),
    prompt: compileMatcher(key.prompts),
    resource: compileMatcher(key.resources),
    root: compileMatcher(key.roots ?? []),
    everyTool: key.allow.includes('*'),
    everyPrompt: key.prompts.includes('*'),
  });
}

/**
 * Bounded label values. A label value that comes from a request (a tool name, a method) is only
 * used when it is in a known set taken from the config; anything else is `other`, so a client cannot
 * create series at will, and a scraper learns no name the config does not already spell.
 */

export const OTHER = 'other';

/** The `key` label of a request with no principal, of every OAuth subject, of the unauthenticated one. */
export const NO_KEY = 'none';
export const OAUTH_KEY = 'oauth';
export const ANONYMOUS_KEY = 'anonymous';

/**
 * The `key` label's values that are no configured key (those above, and a label not known): a key
 * labelled so is counted with them.
 */
export const RESERVED_KEY_LABELS: readonly string[] = Object.freeze([
  NO_KEY,
  OAUTH_KEY,
  ANONYMOUS_KEY,
  OTHER,
]);

/** Longest name used as a label (longer ones are `other`). */
export const MAX_LABEL_LENGTH = 128;

/** A fixed set of allowed label values. */
export class LabelSet {
  readonly #fixed = new Set<string>();

  constructor(fixed: Iterable<string>) {
    this.reset(fixed);
  }

  /** Replaces the names (config reload). */
  reset(fixed: Iterable<string>): void {
    this.#fixed.clear();
    for (const name of fixed) if (usable(name)) this.#fixed.add(name);
  }

  /** The label for a value: itself when known, else `other`. */
  label(value: string | undefined): string {
    if (value === undefined) return OTHER;
    return this.#fixed.has(value) ? value : OTHER;
  }

  get size(): number {
    return this.#fixed.size;
  }
}

/** Wildcards are patterns, not names; empty and oversized names are never labels. */
function usable(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length > 0 && name.length <= MAX_LABEL_LENGTH && !name.includes('*')
  );
}

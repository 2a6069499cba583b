/**
 * Bounded label values. A label value that comes from a request (a tool name, a method) is only
 * used when it is in a known set; anything else is `other`, so a client cannot create series at
 * will. The known sets come from the config (bounded) and from the upstream (capped).
 */

export const OTHER = 'other';

/** Longest name accepted into a learned set (longer ones are `other`). */
export const MAX_LABEL_LENGTH = 128;

/** A set of allowed label values: fixed names plus up to `cap` learned ones. */
export class LabelSet {
  readonly #fixed = new Set<string>();
  readonly #learned = new Set<string>();
  readonly #cap: number;

  constructor(fixed: Iterable<string>, cap: number) {
    this.#cap = cap;
    this.reset(fixed);
  }

  /** Replaces the fixed names (config reload); learned names are kept. */
  reset(fixed: Iterable<string>): void {
    this.#fixed.clear();
    for (const name of fixed) if (usable(name)) this.#fixed.add(name);
  }

  /** Adds names until the cap is reached; returns how many were new. */
  learn(names: Iterable<string>): number {
    let added = 0;
    for (const name of names) {
      if (this.#learned.size >= this.#cap) break;
      if (!usable(name) || this.#fixed.has(name) || this.#learned.has(name)) continue;
      this.#learned.add(name);
      added++;
    }
    return added;
  }

  /** The label for a value: itself when known, else `other`. */
  label(value: string | undefined): string {
    if (value === undefined) return OTHER;
    return this.#fixed.has(value) || this.#learned.has(value) ? value : OTHER;
  }

  get size(): number {
    return this.#fixed.size + this.#learned.size;
  }
}

/** Wildcards are patterns, not names; empty and oversized names are never labels. */
function usable(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length > 0 && name.length <= MAX_LABEL_LENGTH && !name.includes('*')
  );
}

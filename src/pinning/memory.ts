/**
 * What makes judging a list cheap: verdicts remembered by the bytes they were taken on.
 *
 * - Per name, the raw bytes of the entry last seen and its verdict: an unchanged entry costs one
 *   Map lookup and one byte comparison; only a new or changed entry is parsed and hashed.
 * - Per kind, the last few whole lists (the bytes between `[` and `]`) with a verdict per entry
 *   offset: a list identical to one seen before (the usual case: the upstream's catalogue did not
 *   change) costs one byte comparison for the whole list and one Map lookup per entry.
 *
 * Remembering is bounded: names per kind, lists per kind and the size of a remembered list.
 */
import type { PinKind } from './lockfile.ts';

export interface Verdict<R> {
  readonly name: string;
  readonly raw: Buffer;
  readonly ok: boolean;
  readonly report: R | undefined;
}

/** Entry verdicts of one whole list, by the entry's offset from the list's `[`. */
export interface ListVerdicts<R> {
  readonly byOffset: Map<number, Verdict<R>>;
  /** How many of them are not ok. */
  bad: number;
}

/** Names remembered per kind; beyond, the memory starts over. */
const MAX_NAMES = 10_000;
/** Whole lists remembered per kind (pages of a paged list are separate lists). */
const MAX_LISTS = 4;
/** Lists larger than this are judged entry by entry only. */
const MAX_LIST_BYTES = 4 * 1024 * 1024;

export class PinMemory<R> {
  readonly #names: Record<PinKind, Map<string, Verdict<R>>> = { tools: new Map(), prompts: new Map() };
  readonly #lists: Record<PinKind, { raw: Buffer; verdicts: ListVerdicts<R> }[]> = { tools: [], prompts: [] };

  /** The verdict last taken on exactly these bytes for this name, if any. */
  entry(kind: PinKind, name: string, bytes: Uint8Array): Verdict<R> | undefined {
    const previous = this.#names[kind].get(name);
    return previous !== undefined && previous.raw.equals(bytes) ? previous : undefined;
  }

  remember(kind: PinKind, verdict: Verdict<R>): void {
    const names = this.#names[kind];
    if (names.size >= MAX_NAMES && !names.has(verdict.name)) names.clear();
    names.set(verdict.name, verdict);
  }

  /**
   * The verdicts of the list body[open, end): those of an identical list seen before, or a new,
   * empty map remembered for it (undefined when the list is too large to remember).
   */
  list(kind: PinKind, body: Uint8Array, open: number, end: number): ListVerdicts<R> | undefined {
    const size = end - open;
    if (size > MAX_LIST_BYTES) return undefined;
    const lists = this.#lists[kind];
    const bytes = body.subarray(open, end);
    for (let i = 0; i < lists.length; i++) {
      const seen = lists[i]!;
      if (seen.raw.length === size && seen.raw.equals(bytes)) {
        if (i > 0) lists.unshift(...lists.splice(i, 1));
        return seen.verdicts;
      }
    }
    const verdicts: ListVerdicts<R> = { byOffset: new Map(), bad: 0 };
    lists.unshift({ raw: Buffer.from(bytes), verdicts });
    if (lists.length > MAX_LISTS) lists.pop();
    return verdicts;
  }
}

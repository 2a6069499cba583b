/**
 * The requests not yet finished, for graceful shutdown: a list threaded through the requests
 * themselves, not a Set.
 *
 * Why not a Set: V8 keeps a Set's entries in a table that it replaces (rehashes) every few dozen
 * additions when entries come and go, and a replaced table keeps pointing at the entries it held.
 * Once a mark-compact has moved the live table to the old generation, every replacement table is
 * allocated there too, and each replaced one is garbage that only the next mark-compact frees.
 * Until then it holds the requests that were in flight when it was replaced, and everything they
 * reach (context, request, response, buffers): every scavenge has to copy them, and then promote
 * them. Under load that kept about a third of all young bytes alive after each mark-compact (7-8 KB
 * per request against 0.5 KB for the floor proxy), and the long scavenges were the p99 tail.
 * Unlinking an entry here clears its own links, so a finished request is reachable from nothing.
 */

/** The links an entry carries (owned by this list; undefined when it is not in one). */
export interface Linked<T> {
  prevInflight: T | undefined;
  nextInflight: T | undefined;
}

export class InflightList<T extends Linked<T>> {
  #first: T | undefined = undefined;
  #last: T | undefined = undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Appends `entry`, which must not be in a list. */
  add(entry: T): void {
    entry.prevInflight = this.#last;
    entry.nextInflight = undefined;
    if (this.#last === undefined) this.#first = entry;
    else this.#last.nextInflight = entry;
    this.#last = entry;
    this.#size++;
  }

  /** Unlinks `entry` if it is in this list; clears its links. */
  delete(entry: T): void {
    const { prevInflight: prev, nextInflight: next } = entry;
    if (prev === undefined && this.#first !== entry) return;
    if (prev === undefined) this.#first = next;
    else prev.nextInflight = next;
    if (next === undefined) this.#last = prev;
    else next.prevInflight = prev;
    entry.prevInflight = undefined;
    entry.nextInflight = undefined;
    this.#size--;
  }

  /** The entries now, in the order they were added (a copy: the list may change meanwhile). */
  entries(): T[] {
    const all: T[] = [];
    for (let entry = this.#first; entry !== undefined; entry = entry.nextInflight) all.push(entry);
    return all;
  }
}

/**
 * Requests each key has at the upstream at once (`max_in_flight`). Every key's POSTs and DELETEs
 * share `upstream.connections`; a request holds one until its answer ends, which for an SSE answer
 * waiting on the client (an elicitation the client never answers) is as long as the client likes.
 * Without a cap per key, one key could hold every connection and leave every other key's requests
 * queued. Counted in this process, like open streams (streams.ts), and for the same reason.
 * No closure or object per request: a request enters with its key's id and leaves with it.
 */
export class InFlightCounter {
  private readonly counts = new Map<string, number>();

  /** Takes a slot for `id`; false when `max` are taken. */
  enter(id: string, max: number): boolean {
    const n = this.counts.get(id) ?? 0;
    if (n >= max) return false;
    this.counts.set(id, n + 1);
    return true;
  }

  /** Gives back a slot `enter` took. */
  leave(id: string): void {
    const left = (this.counts.get(id) ?? 1) - 1;
    if (left > 0) this.counts.set(id, left);
    else this.counts.delete(id);
  }

  /** Requests at the upstream for `id`. */
  of(id: string): number {
    return this.counts.get(id) ?? 0;
  }
}

/**
 * What each key holds at once, counted in this process: requests at the upstream
 * (`max_in_flight`, rate-limit.ts) and open streams (`max_streams`, streams.ts).
 *
 * Requests: every key's POSTs and DELETEs share `upstream.connections`; a request holds one until
 * its answer ends, which for an SSE answer waiting on the client (an elicitation the client never
 * answers) is as long as the client likes. Without a cap per key, one key could hold every
 * connection and leave every other key's requests queued. Counted per process for the reason open
 * streams are (streams.ts). No closure or object per request: a request enters with its key's id
 * and leaves with it.
 */
export class KeyCounter {
  private readonly counts = new Map<string, number>();
  private all = 0;

  /** Takes a slot for `id`; false when `max` are taken. */
  enter(id: string, max: number): boolean {
    const n = this.counts.get(id) ?? 0;
    if (n >= max) return false;
    this.counts.set(id, n + 1);
    this.all++;
    return true;
  }

  /** Gives back a slot `enter` took. */
  leave(id: string): void {
    const left = (this.counts.get(id) ?? 1) - 1;
    if (left > 0) this.counts.set(id, left);
    else this.counts.delete(id);
    this.all--;
  }

  /** Slots `id` holds. */
  of(id: string): number {
    return this.counts.get(id) ?? 0;
  }

  /** Slots held by every key together. */
  get total(): number {
    return this.all;
  }
}

/**
 * Task-creating calls whose answers the gateway never read, per principal (tasks.ts consults it).
 *
 * The gateway learns a task id only from the answer to the call that created it. An answer it never
 * reads (the client aborted, the upstream's answer or stream was cut, a timeout, a refused answer,
 * shutdown) leaves a task upstream that the registry does not hold, and an upstream that numbers
 * tasks per session (`task-1` in each) then answers the same key's later call of another tool with
 * the same id, recorded under that tool alone: once a reload takes the first tool from the key, the
 * id still reads the first tool's task, its output included. The gateway cannot know which id the
 * unread answer held, so any of the key's task ids may be that task: while a call of a tool is
 * unread, the key holds its tasks only while it may use that tool too (tasks.ts owns/disowns).
 *
 * A call is counted when it is forwarded (`forwarded`, by the tag's call: request-tag.ts callOf) and
 * settled when an answer carrying its tag is read (`answered`, filter-list.ts: a result, whether or
 * not it created a task, or an error). By call, not by a bare count per tool: an answer read twice
 * (an SSE stream replayed with Last-Event-ID) must not settle another call of the same tool. A call
 * never answered is forgotten `ttlMs` after it was forwarded (the tasks' own lifetime, tasks.ts).
 *
 * A task the registry forgot before it expired (pushed out by the key's newer tasks, or by the
 * registry's bound: tasks.ts) is lost the same way: its id is no longer known, and the next answer
 * with it starts afresh. Its tools are held as an unread call each (`lost`), until it would have
 * expired: one entry per tool, however many tasks of it went.
 *
 * Bounded: at most `maxPerOwner` unread calls and MAX_TOOLS tools per principal, and `maxCalls` in
 * all. Past a principal's bound it is closed instead (every task of it is unknown to it for `ttlMs`,
 * and its calls are dropped: it fails closed, for that principal only). Past `maxCalls` the principal
 * holding the most unread calls is closed, which makes room: closing the one adding a call let 100
 * principals with 1,000 unread calls each close every other principal's tasks for a day, each time
 * one made a task call. Past `maxOwners` principals (after expired ones are dropped) every principal
 * not yet held is closed until the oldest held one expires: that needs as many principals with
 * credentials, each with an unread task call.
 */
import type { ToolGrant } from './tasks.ts';

/** The most tools one principal's unread calls are held for; past it, the principal is closed. */
export const MAX_TOOLS = 16;

/** The calls `lost` holds start with this (a tag's call starts with `g1`: request-tag.ts). */
const LOST = '\0lost\0';

export interface UnreadOptions {
  readonly maxPerOwner: number;
  readonly maxCalls: number;
  readonly maxOwners: number;
  readonly ttlMs: number;
  readonly now: () => number;
}

interface Owner {
  /** Call → its tool and expiry, in the order forwarded (so in expiry order). */
  readonly calls: Map<string, Call>;
  /** Tool → how many of `calls` are of it. */
  readonly tools: Map<string | undefined, number>;
  /** Until then every task of the principal is unknown to it (a bound was hit); 0: open. */
  closedUntil: number;
  /** When its last call expires or it opens again: the record may go then. */
  lastExpiry: number;
}

interface Call {
  readonly tool: string | undefined;
  readonly expiry: number;
}

export class UnreadTaskCalls {
  private readonly options: UnreadOptions;
  /** Principal → its record, least recently forwarded first. */
  private readonly owners = new Map<string, Owner>();
  private calls = 0;
  /** Past maxOwners: principals not held are closed until then. */
  private saturatedUntil = 0;

  constructor(options: UnreadOptions) {
    this.options = options;
  }

  /** Unread calls held, in all. */
  get size(): number {
    return this.calls;
  }

  /** Principals held (with unread calls, or closed). */
  get ownerCount(): number {
    return this.owners.size;
  }

  /**
   * A task-creating call of `tool` was forwarded for `owner`, tagged as `call`; or an answer to it was
   * refused after another settled it (filter-list.ts unreadAgain). Nothing while it is held.
   */
  forwarded(owner: string, call: string, tool: string | undefined): void {
    const now = this.options.now();
    this.hold(owner, call, tool, now, now + this.options.ttlMs);
  }

  /**
   * A task of `owner` made by `tools` was forgotten before `expiry` (tasks.ts): held as one unread
   * call per tool until then. `null` (an id too many tools answered with): the principal is closed.
   */
  lost(owner: string, tools: readonly (string | undefined)[] | null, expiry: number): void {
    const now = this.options.now();
    if (expiry <= now) return;
    if (tools === null) {
      const record = this.record(owner, now);
      if (record !== undefined) this.close(record, expiry);
      return;
    }
    for (const tool of tools) {
      const call = `${LOST}${tool ?? ''}`;
      const held = this.owners.get(owner)?.calls.get(call);
      // Held until the latest of its tasks would have expired. Appended, it may sit behind calls that
      // expire after it: expire() then keeps it a little longer, and never drops anything early.
      if (held !== undefined) {
        if (held.expiry >= expiry) continue;
        this.answered(owner, call);
      }
      this.hold(owner, call, tool, now, expiry);
    }
  }

  /** An answer carrying `call`'s tag was read for `owner` (again, or one of another replica's: nothing). */
  answered(owner: string, call: string): void {
    const record = this.owners.get(owner);
    if (record === undefined) return;
    const entry = record.calls.get(call);
    if (entry === undefined) return;
    record.calls.delete(call);
    this.settle(record, entry.tool);
    if (record.calls.size === 0 && record.closedUntil <= this.options.now()) this.owners.delete(owner);
  }

  /**
   * Whether `grants` allow the tool of every unread call of `owner` (true without any), and it is not
   * closed. Without grants: only whether it is closed.
   */
  allows(owner: string, grants: ToolGrant | undefined): boolean {
    const record = this.owners.get(owner);
    if (record === undefined) return this.saturatedUntil === 0 || !this.saturated();
    const now = this.options.now();
    if (record.closedUntil > now) return false;
    this.expire(record, now);
    if (record.calls.size === 0) {
      this.owners.delete(owner);
      return true;
    }
    if (grants === undefined) return true;
    for (const tool of record.tools.keys()) if (tool !== undefined && !grants.tool(tool)) return false;
    return true;
  }

  /** `call` of `tool`, unread until `expiry`; past a bound the principal is closed instead. */
  private hold(owner: string, call: string, tool: string | undefined, now: number, expiry: number): void {
    const record = this.record(owner, now);
    if (record === undefined) return;
    // Held already (an answer refused after its call was settled: filter-list.ts): counted once.
    if (record.calls.has(call)) return;
    if (record.closedUntil <= now && this.calls >= this.options.maxCalls) this.closeLargest();
    if (record.closedUntil > now) {
      // Closed: its calls are not told apart; it stays closed while any may be unread.
      this.close(record, expiry);
      return;
    }
    const count = record.tools.get(tool);
    if (
      record.calls.size >= this.options.maxPerOwner ||
      this.calls >= this.options.maxCalls ||
      (count === undefined && record.tools.size >= MAX_TOOLS)
    ) {
      this.close(record, expiry);
      return;
    }
    record.calls.set(call, { tool, expiry });
    record.tools.set(tool, (count ?? 0) + 1);
    record.lastExpiry = Math.max(record.lastExpiry, expiry);
    this.calls++;
  }

  /**
   * The record of `owner`, made if need be and moved to the end (its expired calls dropped);
   * undefined when there is no room for another principal (saturated: it is closed as one not held).
   */
  private record(owner: string, now: number): Owner | undefined {
    let record = this.owners.get(owner);
    if (record === undefined) {
      if (this.owners.size >= this.options.maxOwners) this.dropExpiredOwners(now);
      if (this.owners.size >= this.options.maxOwners) {
        this.saturatedUntil = Math.max(this.saturatedUntil, now + this.options.ttlMs);
        return undefined;
      }
      record = { calls: new Map(), tools: new Map(), closedUntil: 0, lastExpiry: 0 };
    } else {
      this.owners.delete(owner);
      this.expire(record, now);
    }
    this.owners.set(owner, record);
    return record;
  }

  /**
   * Closes the principal holding the most unread calls (the least recently forwarded of equals)
   * until its last would have expired: the registry is full, and the one filling it pays, not
   * whichever principal adds the next call. Scans every principal, once per call past the bound,
   * and frees the room of the largest.
   */
  private closeLargest(): void {
    let largest: Owner | undefined;
    for (const record of this.owners.values())
      if (record.calls.size > (largest?.calls.size ?? 0)) largest = record;
    if (largest !== undefined) this.close(largest, largest.lastExpiry);
  }

  private saturated(): boolean {
    if (this.saturatedUntil > this.options.now()) return true;
    this.saturatedUntil = 0;
    return false;
  }

  /** Closes `record` until at least `until`, dropping its calls (they are no longer told apart). */
  private close(record: Owner, until: number): void {
    this.calls -= record.calls.size;
    record.calls.clear();
    record.tools.clear();
    record.closedUntil = Math.max(record.closedUntil, until);
    record.lastExpiry = Math.max(record.lastExpiry, record.closedUntil);
  }

  private settle(record: Owner, tool: string | undefined): void {
    this.calls--;
    const left = (record.tools.get(tool) ?? 1) - 1;
    if (left === 0) record.tools.delete(tool);
    else record.tools.set(tool, left);
  }

  /**
   * Drops the calls of `record` that expired, the oldest first: the order they were held in is their
   * expiry order (but for one lost() appended early, which waits for those before it).
   */
  private expire(record: Owner, now: number): void {
    for (const [call, entry] of record.calls) {
      if (entry.expiry > now) break;
      record.calls.delete(call);
      this.settle(record, entry.tool);
    }
  }

  /** Drops every principal whose calls all expired and that is not closed. */
  private dropExpiredOwners(now: number): void {
    for (const [owner, record] of this.owners) {
      if (record.lastExpiry > now) continue;
      this.calls -= record.calls.size;
      this.owners.delete(owner);
    }
  }
}

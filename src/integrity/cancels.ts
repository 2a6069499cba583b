/**
 * Which tag the gateway used for a client's request id, so that a client's
 * `notifications/cancelled` names the request the upstream knows (its `requestId` is the tag, never
 * the client's id). Tags are fresh per request (a nonce), so this cannot be recomputed: it is a
 * per-process map, bounded (the oldest entry goes first) and scoped by principal and upstream
 * session. An entry is forgotten when the request's response passes.
 *
 * Each principal keeps at most MAX_PENDING_PER_PRINCIPAL entries (its own oldest go first), so one
 * key's flood of requests that are never answered (aborted, failed, or on the HTTP+SSE transport,
 * answered on the GET stream) cannot push another key's pending requests out.
 *
 * Trade-off (documented in the README): a cancellation that reaches another replica than the one
 * that forwarded the request, or arrives after MAX_PENDING newer requests (of its principal:
 * MAX_PENDING_PER_PRINCIPAL), finds no entry; it is then
 * forwarded naming a fresh tag no request has, which the upstream ignores, as the protocol lets a
 * receiver ignore a cancellation of a request it does not know. The request runs to its end; its
 * response is still matched and passed.
 */
import type { JsonRpcId } from '../jsonrpc/message.ts';

/** Requests remembered at most (about 200 bytes each; a few KB at most: MAX_REMEMBERED_ID_CHARS). */
export const MAX_PENDING = 10_000;
/**
 * Longest string id remembered. An entry holds the client's id and its tag (which spells the id
 * again, in base64url), and a client id may be as long as a body (`limits.max_body_bytes`): bounded
 * only in number, one key's 1,000 entries of 4 MiB ids held about 10 GB, and the process ran out
 * of heap. A request with a longer id is not remembered (rememberable): its cancellation names a
 * tag no request has, which the upstream ignores, as when it comes too late (see above). Real
 * clients' ids (numbers, UUIDs, `req-17`) are far shorter.
 */
export const MAX_REMEMBERED_ID_CHARS = 256;

/** Whether a request with this id is remembered for its cancellation (MAX_REMEMBERED_ID_CHARS). */
export function rememberable(clientId: JsonRpcId): boolean {
  return typeof clientId !== 'string' || clientId.length <= MAX_REMEMBERED_ID_CHARS;
}

/** Requests remembered at most for one principal. */
export const MAX_PENDING_PER_PRINCIPAL = 1_000;
/**
 * Maps and principal lists left empty that are kept for reuse, at most, before a sweep drops those
 * still empty (a few hundred KB at worst, the keys they keep alive included: KEY_SHIFT).
 */
export const SWEEP_AFTER = 1_024;
/** A map or list left empty counts once more for each 2 ** KEY_SHIFT characters of its key. */
const KEY_SHIFT = 8;

/** What a map or list keyed by `key` counts for once left empty (toward SWEEP_AFTER). */
function weightOf(key: string): number {
  return 1 + (key.length >>> KEY_SHIFT);
}

/** The client ids of one (principal, session) pair. */
type Ids = Map<JsonRpcId, Pending>;
/** A principal's sessions ('' for requests outside one). */
type Sessions = Map<string, Ids>;

/**
 * One remembered request (what remember() returns, for forget()): where it waits, and its links in
 * the list of entries, oldest first.
 */
export class Pending {
  readonly tag: string;
  readonly clientId: JsonRpcId;
  /** The map holding it (live for as long as it is linked: a map is dropped only once empty). */
  readonly ids: Ids;
  prev: Pending | undefined = undefined;
  next: Pending | undefined = undefined;
  /** Links in its principal's list, oldest first. */
  prevOwn: Pending | undefined = undefined;
  nextOwn: Pending | undefined = undefined;
  /** Its principal's list. */
  readonly owner: Owner;
  /** What its map counts for once left empty: weightOf its session. */
  readonly weight: number;
  linked = true;
  /**
   * A cancellation named the request (cancel): a stream that then ends without its answer owes it
   * `request cancelled` (match.ts), and the exchange's line does not blame the upstream, which
   * should not answer it.
   */
  cancelled = false;

  constructor(clientId: JsonRpcId, tag: string, ids: Ids, owner: Owner, weight: number) {
    this.owner = owner;
    this.weight = weight;
    this.clientId = clientId;
    this.tag = tag;
    this.ids = ids;
  }
}

/** One principal's entries: how many, and its oldest and newest. */
class Owner {
  /** What the list counts for once left empty: weightOf its binding id. */
  readonly weight: number;
  count = 0;
  oldest: Pending | undefined = undefined;
  newest: Pending | undefined = undefined;

  constructor(weight: number) {
    this.weight = weight;
  }
}

/**
 * Maps by principal, then session, then client id, rather than one map keyed by a string of the
 * three: no key string is built, flattened and hashed per request (the binding id is the principal's
 * own string, its hash computed once; a number id is its own key). A Map tells 5 from "5", and a
 * binding id or a session id is a key of its own, so no spelling of one can be read as another.
 *
 * A map or a principal's list left empty stays, for the next request of the same session to use:
 * a client that waits for each answer before its next request would otherwise have two maps and a
 * list made and dropped per request. Every SWEEP_AFTER of them left empty, one sweep drops those
 * still empty, so at most that many empty ones are held whatever the clients do (one with a long
 * key counts for one more per 2 ** KEY_SHIFT characters of it, so the keys they keep alive stay
 * under SWEEP_AFTER << KEY_SHIFT characters); the sweep walks the principals, maps and lists held
 * (each at most MAX_PENDING in use and SWEEP_AFTER empty): at worst about thirty for each map or
 * list left empty, fewer the fewer requests wait.
 */
export class PendingTags {
  readonly #scopes = new Map<string, Sessions>();
  readonly #owners = new Map<string, Owner>();
  readonly #max: number;
  readonly #maxPerPrincipal: number;
  #size = 0;
  /** What the maps and lists left empty since the last sweep count for (their weights). */
  #emptied = 0;
  #oldest: Pending | undefined = undefined;
  #newest: Pending | undefined = undefined;

  constructor(max: number = MAX_PENDING, maxPerPrincipal: number = Math.min(max, MAX_PENDING_PER_PRINCIPAL)) {
    if (!Number.isInteger(max) || max <= 0)
      throw new TypeError('PendingTags: max must be a positive integer');
    if (!Number.isInteger(maxPerPrincipal) || maxPerPrincipal <= 0)
      throw new TypeError('PendingTags: maxPerPrincipal must be a positive integer');
    this.#max = max;
    this.#maxPerPrincipal = maxPerPrincipal;
  }

  get size(): number {
    return this.#size;
  }

  /**
   * The request with this client id, of this principal (`bindingId`) in this upstream session (when
   * it belongs to one), was forwarded under `tag`. Returns the entry, for forget().
   */
  remember(bindingId: string, sessionId: string | undefined, clientId: JsonRpcId, tag: string): Pending {
    const session = sessionId ?? '';
    let sessions = this.#scopes.get(bindingId);
    if (sessions === undefined) this.#scopes.set(bindingId, (sessions = new Map()));
    let ids = sessions.get(session);
    if (ids === undefined) sessions.set(session, (ids = new Map()));
    const replaced = ids.get(clientId);
    if (replaced !== undefined) this.#unlink(replaced);
    // Looked up after that unlink: it may have left the list empty and swept it.
    let owner = this.#owners.get(bindingId);
    if (owner === undefined) this.#owners.set(bindingId, (owner = new Owner(weightOf(bindingId))));
    const entry = new Pending(clientId, tag, ids, owner, weightOf(session));
    ids.set(clientId, entry);
    if (this.#newest === undefined) this.#oldest = entry;
    else {
      this.#newest.next = entry;
      entry.prev = this.#newest;
    }
    this.#newest = entry;
    if (owner.newest === undefined) owner.oldest = entry;
    else {
      owner.newest.nextOwn = entry;
      entry.prevOwn = owner.newest;
    }
    owner.newest = entry;
    owner.count++;
    this.#size++;
    if (owner.count > this.#maxPerPrincipal) this.#drop(owner.oldest as Pending);
    else if (this.#size > this.#max) this.#drop(this.#oldest as Pending);
    return entry;
  }

  /** The tag the request with this key was forwarded under, if it is still pending here. */
  tagFor(bindingId: string, sessionId: string | undefined, clientId: JsonRpcId): string | undefined {
    return this.#scopes
      .get(bindingId)
      ?.get(sessionId ?? '')
      ?.get(clientId)?.tag;
  }

  /** tagFor, for the client's cancellation of that request: the entry is marked cancelled. */
  cancel(bindingId: string, sessionId: string | undefined, clientId: JsonRpcId): string | undefined {
    const entry = this.#scopes
      .get(bindingId)
      ?.get(sessionId ?? '')
      ?.get(clientId);
    if (entry === undefined) return undefined;
    entry.cancelled = true;
    return entry.tag;
  }

  /**
   * The request remembered as `entry` (what remember() returned) was answered; forgotten only when
   * `tag` is still the one remembered there (a newer request with the same id replaced it otherwise).
   */
  forget(entry: Pending, tag: string): void {
    if (entry.linked && entry.tag === tag) this.#drop(entry);
  }

  /** Takes `entry` out of its map (kept when left empty: #leftEmpty) and out of the list. */
  #drop(entry: Pending): void {
    entry.ids.delete(entry.clientId);
    if (entry.ids.size === 0) this.#leftEmpty(entry.weight);
    this.#unlink(entry);
  }

  /** Takes `entry` out of the list only (its map slot is being replaced, or was just deleted). */
  #unlink(entry: Pending): void {
    if (!entry.linked) return;
    entry.linked = false;
    const { prev, next } = entry;
    if (prev === undefined) this.#oldest = next;
    else prev.next = next;
    if (next === undefined) this.#newest = prev;
    else next.prev = prev;
    entry.prev = undefined;
    entry.next = undefined;
    this.#size--;
    const owner = entry.owner;
    const { prevOwn, nextOwn } = entry;
    if (prevOwn === undefined) owner.oldest = nextOwn;
    else prevOwn.nextOwn = nextOwn;
    if (nextOwn === undefined) owner.newest = prevOwn;
    else nextOwn.prevOwn = prevOwn;
    entry.prevOwn = undefined;
    entry.nextOwn = undefined;
    if (--owner.count === 0) this.#leftEmpty(owner.weight);
  }

  /** A map or a principal's list was left empty: kept, until those left empty count for SWEEP_AFTER. */
  #leftEmpty(weight: number): void {
    if ((this.#emptied += weight) < SWEEP_AFTER) return;
    this.#emptied = 0;
    // (A Map's iterator goes on past the entries deleted behind it.)
    for (const [bindingId, sessions] of this.#scopes) {
      for (const [session, ids] of sessions) if (ids.size === 0) sessions.delete(session);
      if (sessions.size === 0) this.#scopes.delete(bindingId);
    }
    for (const [bindingId, owner] of this.#owners) if (owner.count === 0) this.#owners.delete(bindingId);
  }

  /**
   * How many (principal, session) maps and principals' lists are held, empty ones included (for
   * tests and diagnostics).
   */
  held(): { scopes: number; principals: number } {
    let scopes = 0;
    for (const sessions of this.#scopes.values()) scopes += sessions.size;
    return { scopes, principals: this.#owners.size };
  }
}

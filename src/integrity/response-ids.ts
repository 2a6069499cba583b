/**
 * Which response ids an exchange may answer (match.ts reads responses with one of these):
 * - exchangeIds / exchangeIdsOf: a POST's own requests, each once (the exact tags forwarded in this
 *   exchange; no MAC to check);
 * - signedIds: a GET stream, which replays responses of earlier POSTs (`Last-Event-ID`) on any
 *   replica: any tag signed for the principal, with the plan it carries.
 */
import { MAC_CHARS } from './request-tag.ts';
import type { RequestTagger, Untagged } from './request-tag.ts';
import type { ForwardedRequests, ForwardedTag, ResponseIds } from './restore.ts';

/**
 * The ids of one exchange's requests, each answerable once. `onAnswer` is told each one answered
 * (the pipeline forgets its pending cancellation then).
 */
export function exchangeIds<T extends Untagged>(
  tags: ReadonlyMap<string, T>,
  onAnswer?: (tag: string, untagged: T) => void,
  sole?: string,
): ResponseIds {
  return new ExchangeIds(tags, onAnswer, sole);
}

/**
 * The ids of the requests `forwarded` (tagRequests) names, each answerable once: a body of one
 * request is answered from its entry, without a map.
 */
export function exchangeIdsOf(
  forwarded: ForwardedRequests,
  onAnswer?: (tag: string, untagged: ForwardedTag) => void,
  signer?: Signer,
): ResponseIds {
  const { sole, soleEntry } = forwarded;
  if (sole !== undefined && soleEntry !== undefined) return new SoleIds(sole, soleEntry, onAnswer, signer);
  return new ExchangeIds(forwarded.tags, onAnswer, sole, signer);
}

/**
 * What an exchange's tags were signed for (tagRequests' context, no object made): an upstream may send
 * an answer to another exchange's request on this one's stream, refused here, and a task-creating
 * call's must still make its call unread again (filter-list.ts unreadAgain: ResponseIds.signedTag).
 */
export interface Signer {
  readonly tagger: RequestTagger;
  readonly bindingId: string;
  readonly signedFor?: string | undefined;
}

function untagSigned(signer: Signer | undefined, id: string): Untagged | undefined {
  return signer?.tagger.untag(signer.signedFor ?? signer.bindingId, id);
}

/** An exchange of one request: ExchangeIds with its one tag, without the map. */
class SoleIds<T extends Untagged> implements ResponseIds {
  readonly #tag: string;
  readonly #entry: T;
  readonly #onAnswer: ((tag: string, untagged: T) => void) | undefined;
  readonly #signer: Signer | undefined;
  #answered = false;

  constructor(tag: string, entry: T, onAnswer?: (tag: string, untagged: T) => void, signer?: Signer) {
    this.#tag = tag;
    this.#entry = entry;
    this.#onAnswer = onAnswer;
    this.#signer = signer;
  }

  signedTag(id: string): Untagged | undefined {
    return untagSigned(this.#signer, id);
  }

  answer(id: string): T | undefined {
    if (this.#answered || id !== this.#tag) return undefined;
    this.#answered = true;
    this.#onAnswer?.(id, this.#entry);
    return this.#entry;
  }

  name(id: string): T | undefined {
    return id === this.#tag ? this.#entry : undefined;
  }

  sole(): string | undefined {
    return !this.#answered && this.#entry.plan === 'none' ? this.#tag : undefined;
  }

  awaited(): boolean {
    return !this.#answered;
  }

  answeredAny(): boolean {
    return this.#answered;
  }

  unanswered(): readonly T[] {
    return this.#answered ? [] : [this.#entry];
  }
}

/** One object per exchange, nothing copied: the tags answered so far are kept beside the map. */
class ExchangeIds<T extends Untagged> implements ResponseIds {
  readonly #tags: ReadonlyMap<string, T>;
  readonly #onAnswer: ((tag: string, untagged: T) => void) | undefined;
  /** The first tag answered (most exchanges have one request), then every one in a set. */
  #answered: string | Set<string> | undefined;
  /** The one tag, when the caller knows it (ForwardedRequests.sole). */
  readonly #sole: string | undefined;
  readonly #signer: Signer | undefined;

  constructor(
    tags: ReadonlyMap<string, T>,
    onAnswer?: (tag: string, untagged: T) => void,
    sole?: string,
    signer?: Signer,
  ) {
    this.#tags = tags;
    this.#onAnswer = onAnswer;
    this.#sole = sole;
    this.#signer = signer;
  }

  signedTag(id: string): Untagged | undefined {
    return untagSigned(this.#signer, id);
  }

  answer(id: string): T | undefined {
    const untagged = this.#tags.get(id);
    if (untagged === undefined) return undefined;
    const answered = this.#answered;
    if (answered === undefined) this.#answered = id;
    else if (typeof answered === 'string') {
      if (answered === id) return undefined;
      this.#answered = new Set([answered, id]);
    } else {
      if (answered.has(id)) return undefined;
      answered.add(id);
    }
    this.#onAnswer?.(id, untagged);
    return untagged;
  }

  name(id: string): T | undefined {
    return this.#tags.get(id);
  }

  awaited(): boolean {
    const answered = this.#answered;
    const count = answered === undefined ? 0 : typeof answered === 'string' ? 1 : answered.size;
    return count < this.#tags.size;
  }

  answeredAny(): boolean {
    return this.#answered !== undefined;
  }

  unanswered(): readonly T[] {
    const answered = this.#answered;
    const out: T[] = [];
    for (const [tag, untagged] of this.#tags)
      if (answered === undefined || (typeof answered === 'string' ? answered !== tag : !answered.has(tag)))
        out.push(untagged);
    return out;
  }

  sole(): string | undefined {
    if (this.#answered !== undefined || this.#tags.size !== 1) return undefined;
    const tag = this.#sole ?? (this.#tags.keys().next().value as string);
    return this.#tags.get(tag)?.plan === 'none' ? tag : undefined;
  }
}

/**
 * Tags a GET stream remembers having passed an answer to (by their MAC, 16 characters: about 50
 * bytes each), on either transport (the HTTP+SSE stream: transport/sse/session-ids.ts).
 */
export const MAX_STREAM_ANSWERED = 1024;

/**
 * The tags one GET stream has answered. A stream is no exchange (it may replay any earlier
 * request's answer), but it replays each at most once: an upstream sending a second copy on the same
 * stream would hand the client a second answer to one of its ids, which a client that reuses an id
 * once its request is done takes for the answer to its new request. The oldest are forgotten first,
 * so a repeat with more than MAX_STREAM_ANSWERED answers between the copies passes.
 */
export class StreamAnswers {
  #macs: Set<string> | undefined;

  /** True the first time the stream answers `tag` (a tag that verified: its MAC ends it). */
  first(tag: string): boolean {
    const mac = tag.slice(-MAC_CHARS);
    if (this.has(mac)) return false;
    this.add(mac);
    return true;
  }

  /** Whether the tag with this MAC was answered on the stream. */
  has(mac: string): boolean {
    return this.#macs?.has(mac) === true;
  }

  /** Forgets the tag with this MAC; whether it was remembered. */
  forget(mac: string): boolean {
    return this.#macs?.delete(mac) === true;
  }

  /** Remembers the tag with this MAC as answered (the oldest forgotten past MAX_STREAM_ANSWERED). */
  add(mac: string): void {
    const macs = (this.#macs ??= new Set());
    if (macs.size >= MAX_STREAM_ANSWERED) macs.delete(macs.values().next().value as string);
    macs.add(mac);
  }
}

/** Any tag signed for this principal (GET streams: replays of earlier exchanges), each answered once. */
export function signedIds(tagger: RequestTagger, bindingId: string): ResponseIds {
  return new SignedIds(tagger, bindingId);
}

/** One object, no closures: a GET stream holds it for as long as it is open. */
class SignedIds implements ResponseIds {
  private readonly tagger: RequestTagger;
  private readonly bindingId: string;
  private readonly answered = new StreamAnswers();

  constructor(tagger: RequestTagger, bindingId: string) {
    this.tagger = tagger;
    this.bindingId = bindingId;
  }

  answer(id: string): Untagged | undefined {
    const untagged = this.tagger.untag(this.bindingId, id);
    return untagged !== undefined && this.answered.first(id) ? untagged : undefined;
  }

  name(id: string): Untagged | undefined {
    return this.tagger.untag(this.bindingId, id);
  }
}

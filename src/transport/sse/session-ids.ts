/**
 * Which responses one HTTP+SSE GET stream may pass. Every response of this transport comes back on
 * the GET stream of the upstream session its request was POSTed to, so a request's tag is signed
 * for that session as well as for the principal (`sessionBinding`): the answer to one client's
 * request cannot pass on the stream of another client of the same key, where a request with the same
 * client id may be waiting for its own answer (SDK clients all number their requests from 0). The
 * check stays stateless across replicas: the stream and the POST each know the session's upstream
 * endpoint, the one from the `endpoint` event, the other from the signed `session` parameter.
 *
 * This transport never replays a stream (no `Last-Event-ID` reaches the upstream), so a tag answered
 * once on a stream is never answered there again: the stream remembers the last MAX_ANSWERED it
 * passed and drops a second answer to any of them. Older ones are forgotten, so a repeat with more
 * than that many answers between the two copies passes; what it could carry is the same request's
 * answer, already filtered for this stream's principal. An event that is dropped (a batch holding
 * one answer it may not pass, a list that cannot be read) answers nothing: its tags are remembered
 * only once it passes (`begin` before reading an event, `commit` once it is passed on).
 */
import { MAC_CHARS } from '../../integrity/request-tag.ts';
import type { RequestTagger, Untagged } from '../../integrity/request-tag.ts';
import type { ResponseIds } from '../../integrity/restore.ts';
import { StreamAnswers } from '../../integrity/response-ids.ts';

/** Answered tags a stream remembers: the same memory as a Streamable HTTP GET stream's. */
export { MAX_STREAM_ANSWERED as MAX_ANSWERED } from '../../integrity/response-ids.ts';
/**
 * Upstream endpoints a stream takes answers for: the protocol sends one `endpoint` event per stream,
 * and an upstream that sends more cannot make every answer cost a MAC per endpoint, nor the stream
 * keep every endpoint it named (transport.ts forgets older ones). Answers to requests POSTed to an
 * older endpoint than the last MAX_ENDPOINTS are dropped.
 */
export const MAX_ENDPOINTS = 4;

/**
 * The binding a request POSTed to the upstream endpoint `path` is tagged for. A path as the gateway
 * keeps it (a URL's serialised path and query: no newline) starts with `/`, which no principal's
 * binding does (`k:`, `o:`, `anonymous`), so the pair is read back one way only and no tag of this
 * transport is one of Streamable HTTP's.
 */
export function sessionBinding(path: string, bindingId: string): string {
  return `${path}\n${bindingId}`;
}

/** One object per stream; `paths` is the stream's live list of upstream endpoints, oldest first. */
export class SessionIds implements ResponseIds {
  private readonly tagger: RequestTagger;
  private readonly bindingId: string;
  private readonly paths: readonly string[];
  /** The tags answered on this stream (by their MACs, the oldest forgotten first). */
  private readonly answered = new StreamAnswers();
  /** The MACs of the tags the event being read answers (a Set: a batch may answer thousands). */
  private readonly taken = new Set<string>();
  /** Told each answer passed (owed.ts: what the stream still owes at shutdown). */
  private readonly onAnswered: ((mac: string) => void) | undefined;

  constructor(
    tagger: RequestTagger,
    bindingId: string,
    paths: readonly string[],
    onAnswered?: (mac: string) => void,
  ) {
    this.tagger = tagger;
    this.bindingId = bindingId;
    this.paths = paths;
    this.onAnswered = onAnswered;
  }

  /** Before reading an event: forgets what a dropped one took. */
  begin(): void {
    this.taken.clear();
  }

  /** The event read since begin() is passed on: its answers are remembered. */
  commit(): void {
    const taken = this.taken;
    if (taken.size === 0) return;
    for (const mac of taken) {
      this.answered.add(mac);
      this.onAnswered?.(mac);
    }
    taken.clear();
  }

  answer(id: string): Untagged | undefined {
    const untagged = this.name(id);
    if (untagged === undefined) return undefined;
    // A tag's MAC names it (a tag is up to MAX_TAG_CHARS long, its client id inside).
    const mac = id.slice(-MAC_CHARS);
    if (this.answered.has(mac) || this.taken.has(mac)) return undefined;
    this.taken.add(mac);
    return untagged;
  }

  name(id: string): Untagged | undefined {
    const paths = this.paths;
    for (let i = paths.length - 1; i >= 0 && i >= paths.length - MAX_ENDPOINTS; i--) {
      const untagged = this.tagger.untag(sessionBinding(paths[i] as string, this.bindingId), id);
      if (untagged !== undefined) return untagged;
    }
    return undefined;
  }
}

/**
 * Responses on an HTTP+SSE transport GET stream, judged by the request they answer. On this
 * transport every response comes back on the GET stream, none on the POST that asked. Each request
 * the gateway forwarded carries a tag signed for the principal (src/integrity/request-tag.ts: the
 * client's id and what its response needs), so a response is matched statelessly, on whichever
 * replica holds the stream: it passes only with a tag signed for this stream's principal, gets the
 * client's id back, and has its list filtered by the plan the tag carries. Anything else (a response
 * to a request the gateway never forwarded, a denied one, another key's, data that is not JSON) is
 * dropped: on this transport there is no POST whose answer could carry an error instead.
 */
import type { Principal } from '../../auth/principal.ts';
import { signedIds } from '../../integrity/match.ts';
import type { RequestTagger } from '../../integrity/request-tag.ts';
import { restoreIds } from '../../integrity/restore.ts';
import { rewriteEventData } from '../../policy/filter-list.ts';
import type { TaskOwnership } from '../../policy/tasks.ts';
import type { Cursors } from '../../integrity/cursors.ts';
import { UNREADABLE } from '../../policy/unreadable.ts';
import type { Pinning, PinReport } from '../../pinning/pins.ts';
import { parsedAsSpelled } from '../../jsonrpc/key-check.ts';

export interface Matched {
  /** The data to send on. */
  readonly data: string;
  /** A list in it was filtered (the audit line counts such events). */
  readonly filtered: boolean;
}

/** One message event's data: what to send, or undefined to drop the event. */
export type EventMatcher = (data: string) => Matched | undefined;

/**
 * Makes the matcher of each stream, for the principal that opened it; `onPinReport` hears each
 * definition a list on it showed not as pinned (for the stream's audit line).
 */
export type StreamMatcher = (principal: Principal, onPinReport?: (report: PinReport) => void) => EventMatcher;

/**
 * `pinning`, when on: tools and prompts lists are judged against the lockfile too (changes are
 * reported in the operational log, the metric and, through `onPinReport`, on the audit line of
 * the GET stream that carried the list: on this transport no POST's line can, it is written
 * before the response exists).
 */
export function createStreamMatcher(
  tagger: RequestTagger,
  tasks: TaskOwnership,
  cursors: Cursors,
  pinning?: Pinning,
): StreamMatcher {
  return (principal, onPinReport) => {
    const ids = signedIds(tagger, principal.bindingId);
    const scope = tasks.scope(principal.bindingId);
    const pins = pinning?.forList(onPinReport);
    const seal = cursors.sealerFor(principal.bindingId);
    return (data) => {
      let value: unknown;
      try {
        value = JSON.parse(data);
      } catch {
        return undefined;
      }
      // What passes is these bytes with ids restored: they must spell what was read (key-check.ts).
      if (!parsedAsSpelled(data, value)) return undefined;
      const restored = restoreIds(data, value, ids);
      if (restored === undefined) return undefined;
      if (restored.plans === undefined) return { data: restored.text, filtered: false };
      const out = rewriteEventData(restored.text, restored.plans, principal.grants, scope, pins, seal);
      if (out === UNREADABLE) return undefined;
      return out === undefined
        ? { data: restored.text, filtered: false }
        : { data: out, filtered: out !== restored.text };
    };
  };
}

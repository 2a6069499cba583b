/**
 * Responses on an HTTP+SSE transport GET stream, judged by the request they answer. On this
 * transport every response comes back on the GET stream, none on the POST that asked. Each request
 * the gateway forwarded carries a tag signed for the principal and the upstream session it was
 * POSTed to (src/integrity/request-tag.ts: the client's id and what its response needs;
 * session-ids.ts), so a response is matched statelessly, on whichever replica holds the stream: it
 * passes only with a tag signed for this stream's principal and session, answered once, gets the
 * client's id back, and has its list filtered by the plan the tag carries. Anything else (a response
 * to a request the gateway never forwarded, a denied one, another key's or another session's, a
 * second answer, data that is not JSON) is dropped: on this transport there is no POST whose answer
 * could carry an error instead.
 */
import type { Principal } from '../../auth/principal.ts';
import type { RequestTagger } from '../../integrity/request-tag.ts';
import { restoreIds } from '../../integrity/restore.ts';
import { rewriteEventData, unreadAgain } from '../../policy/filter-list.ts';
import type { TaskOwnership } from '../../policy/tasks.ts';
import type { Cursors } from '../../integrity/cursors.ts';
import { UNREADABLE } from '../../policy/unreadable.ts';
import type { Pinning, PinReport } from '../../pinning/pins.ts';
import { parsedAsSpelled } from '../../jsonrpc/key-check.ts';
import { SessionIds } from './session-ids.ts';
import { hidesUpdate, withoutHiddenUpdates } from '../../policy/hidden-updates.ts';

export interface Matched {
  /** The data to send on. */
  readonly data: string;
  /** A list in it was filtered (the audit line counts such events). */
  readonly filtered: boolean;
}

/** One message event's data: what to send, or undefined to drop the event. */
export type EventMatcher = (data: string) => Matched | undefined;

/**
 * Makes the matcher of each stream, for the principal that opened it and the upstream endpoints
 * its `endpoint` events named (a live list, oldest first); `onPinReport` hears each definition a
 * list on it showed not as pinned (for the stream's audit line).
 */
export type StreamMatcher = (
  principal: Principal,
  paths: readonly string[],
  onPinReport?: (report: PinReport) => void,
  /** Told the MAC of each request tag whose answer passed (owed.ts). */
  onAnswered?: (mac: string) => void,
) => EventMatcher;

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
  return (principal, paths, onPinReport, onAnswered) => {
    const ids = new SessionIds(tagger, principal.bindingId, paths, onAnswered);
    const scope = tasks.scope(principal.bindingId, principal.grants);
    const pins = pinning?.forList(onPinReport);
    const seal = cursors.sealerFor(principal.bindingId);
    /** What passes of one event's data; undefined drops it. */
    const match = (data: string): Matched | undefined => {
      let value: unknown;
      try {
        value = JSON.parse(data);
      } catch {
        return undefined;
      }
      // What passes is these bytes with ids restored: they must spell what was read (key-check.ts).
      if (!parsedAsSpelled(data, value)) {
        unreadAgain(value, ids, scope);
        return undefined;
      }
      // An update of a resource the key may not use, a status of a task it does not hold
      // (policy/hidden-updates.ts). In a batch only those go, as on Streamable HTTP (match.ts): a
      // response beside them must still answer its request, whose POST was answered 202 long ago.
      if (hidesUpdate(value, principal.grants, scope)) {
        const rest = Array.isArray(value)
          ? withoutHiddenUpdates(data, value, principal.grants, scope)
          : undefined;
        return rest === undefined ? undefined : match(rest);
      }
      const restored = restoreIds(data, value, ids);
      if (restored === undefined) {
        // A refused answer to a task-creating call leaves it unread (filter-list.ts).
        unreadAgain(value, ids, scope);
        return undefined;
      }
      if (restored.plans === undefined) return { data: restored.text, filtered: false };
      const out = rewriteEventData(restored.text, restored.plans, principal.grants, scope, pins, seal);
      if (out === UNREADABLE) return undefined;
      return out === undefined
        ? { data: restored.text, filtered: false }
        : { data: out, filtered: out !== restored.text };
    };
    return (data) => {
      ids.begin();
      const matched = match(data);
      // Only an event passed on answers its requests (session-ids.ts).
      if (matched !== undefined) ids.commit();
      return matched;
    };
  };
}

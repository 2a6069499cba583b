/**
 * GET streams are not requests the gateway judged, yet a resuming GET (`Last-Event-ID`) replays the
 * events of a POST stream that was cut, including a list response. Without a guard a key could ask
 * for `tools/list`, drop the connection after the first event, and read the whole list unfiltered
 * from the replay. So every response found on a GET stream has each list it carries filtered by
 * the key's grants, whatever request it answers (fail closed: a non-list result that happens to
 * hold such a field is filtered too).
 */
import type { ResponseRewrite } from '../proxy/relay.ts';
import { createSseRewriter } from '../proxy/sse-rewrite.ts';
import { filterListResult, mapMessages } from './filter-list.ts';
import type { Grants } from './grants.ts';
import type { ListKind } from './methods.ts';
import type { TaskScope } from './tasks.ts';
import { UNREADABLE } from './unreadable.ts';

const LIST_FIELDS: readonly ListKind[] = ['tools', 'prompts', 'resources', 'resourceTemplates', 'tasks'];

/** A response with each list it carries filtered; undefined for anything that is not a response. */
function guardMessage(message: unknown, grants: Grants, tasks: TaskScope | undefined): unknown {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return undefined;
  const m = message as Record<string, unknown>;
  if (!Object.hasOwn(m, 'result') || Object.hasOwn(m, 'method')) return undefined;
  let result = m.result;
  for (const kind of LIST_FIELDS) result = filterListResult(kind, result, grants, tasks);
  return { ...m, result };
}

/** One SSE event's data: re-serialised when it is a response, untouched otherwise. */
export function guardEventData(
  data: string,
  grants: Grants,
  tasks: TaskScope | undefined,
): string | undefined {
  if (!data.includes('"result"')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return UNREADABLE;
  }
  const guarded = mapMessages(value, (m) => guardMessage(m, grants, tasks));
  return guarded === undefined ? undefined : JSON.stringify(guarded);
}

export function createReplayGuard(grants: Grants, tasks: TaskScope | undefined): ResponseRewrite {
  return {
    json(body) {
      const text = body.toString('utf8');
      const out = guardEventData(text, grants, tasks);
      return out === undefined ? body : Buffer.from(out);
    },
    sse: () => createSseRewriter((data) => guardEventData(data, grants, tasks)),
  };
}

/**
 * Config reload without a restart. The handler reads `holder.current` once per request; a reload
 * builds a whole new set of steps from the new config (authentication with every authenticator it
 * configures, grants, rate-limit policies, and whatever else createSteps builds) and swaps them in
 * one assignment, so a request sees either the old steps or the new ones, never a mix.
 *
 * Which settings apply live is one list (LIVE, minus RESTART below it). Every other changed setting
 * (listen, upstream.*, audit.*, ...) keeps its running value and is reported as needing a restart.
 * After the swap, every open stream (GET, subscriptions/listen) is authenticated again: a stream
 * whose key was removed, disabled or changed (its grants may have shrunk) is ended; the client
 * reconnects and is judged by the new config. So is a forwarded POST's answer not begun yet or
 * streaming (SSE): its events would be filtered by the grants its key had, after the reload said it
 * was done. An answer written whole was judged whole before; it goes on. A POST whose body had not
 * ended when the swap came is refused (stream-admission.ts).
 */
import type { Config } from '../config/schema.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';
import type { Issue } from '../config/spec.ts';
import { crossChecks } from '../config/checks.ts';
import { parseKeyHash } from '../auth/key-hash.ts';
import type { RequestContext } from '../pipeline/context.ts';
import type { PipelineSteps } from '../pipeline/handler.ts';
import { configReloaded } from '../pipeline/stream-admission.ts';

/** Settings applied live (with everything below them). A new capability adds its path here. */
export const LIVE: readonly string[] = Object.freeze([
  'keys',
  'policy',
  'auth',
  'rate_limit.capacity',
  'rate_limit.refill_per_second',
  'rate_limit.max_streams',
  'rate_limit.max_in_flight',
  // The lockfile is read again (a reload after `mcpgate pin` applies the new pins).
  'pinning',
]);
/** Settings below a LIVE path that still need a restart (durable state is built from them). */
export const RESTART: readonly string[] = Object.freeze([
  'auth.session_secret',
  'auth.allow_unauthenticated',
  // The resource server serves metadata routes and refreshes signing keys: built once at start.
  'auth.oauth',
]);

export interface StepsHolder<S extends PipelineSteps = PipelineSteps> {
  current: S;
}

export function createStepsHolder<S extends PipelineSteps>(initial: S): StepsHolder<S> {
  return { current: initial };
}

export type ReloadOutcome =
  | {
      readonly applied: true;
      /** The config now running: live settings from the new file, the rest as before. */
      readonly config: Config;
      /** Changed settings that keep their running value until a restart. */
      readonly restart: readonly string[];
      /** Open streams and answers ended because the new config refuses or changed their principal. */
      readonly endedStreams: number;
    }
  | { readonly applied: false; readonly problems: readonly Issue[]; readonly restart: readonly string[] };

export interface ReloadParts<S extends PipelineSteps> {
  readonly holder: StepsHolder<S>;
  readonly handler: {
    /** The open GET and listen streams. */
    readonly streams: ReadonlyMap<RequestContext, unknown>;
    answering(): RequestContext[];
    endStream(ctx: RequestContext, refusal: unknown): void;
    owes(ctx: RequestContext, settled: () => void): boolean;
    rewatch(ctx: RequestContext, expiresAt: number | undefined): void;
  };
  readonly build: (config: Config) => Promise<S>;
  /** Wall clock (for key expiry checks). */
  readonly now: () => number;
}

export async function reloadSteps<S extends PipelineSteps>(
  running: Config,
  next: Config,
  parts: ReloadParts<S>,
): Promise<ReloadOutcome> {
  const { config, restart } = effectiveConfig(running, next);
  // Live settings joined with the running ones must still agree (e.g. keys with allow_unauthenticated).
  const issues: Issue[] = [];
  crossChecks(config, parts.now(), issues);
  const problems = issues.filter((i) => i.severity === 'error');
  if (problems.length > 0) return { applied: false, problems, restart };
  let steps: S;
  try {
    steps = await parts.build(config);
  } catch (err) {
    return {
      applied: false,
      problems: [{ path: '(config)', message: (err as Error).message, severity: 'error' }],
      restart,
    };
  }
  parts.holder.current = steps;
  const endedStreams = await endRefusedStreams(parts.handler, steps, changedKeys(running, config));
  return { applied: true, config, restart, endedStreams };
}

/** The new file's live settings over the running config; the paths of other settings that differ. */
export function effectiveConfig(running: Config, next: Config): { config: Config; restart: string[] } {
  const restart: string[] = [];
  // The HTTP+SSE transport's stream matcher holds the pinning read at start (steps.ts): there it is
  // a restart setting, kept and reported as one, not "reloaded" while the old pins go on judging.
  const restartOnly = running.upstream.transport === 'sse' ? [...RESTART, 'pinning'] : RESTART;
  const config = merge(running, next, '', restart, restartOnly) as Config;
  return { config, restart };
}

function merge(
  current: unknown,
  next: unknown,
  path: string,
  restart: string[],
  restartOnly: readonly string[],
): unknown {
  if (path !== '' && isLive(path, restartOnly)) return next;
  if (isPlainObject(current) && isPlainObject(next)) {
    const out: Record<string, unknown> = {};
    for (const key of new Set([...Object.keys(current), ...Object.keys(next)])) {
      const value = merge(current[key], next[key], path ? `${path}.${key}` : key, restart, restartOnly);
      if (value !== undefined) out[key] = value;
    }
    return Object.freeze(out);
  }
  if (JSON.stringify(current) !== JSON.stringify(next)) restart.push(path);
  return current;
}

function isLive(path: string, restartOnly: readonly string[]): boolean {
  const under = (p: string) => path === p || path.startsWith(`${p}.`);
  if (!LIVE.some(under)) return false;
  // A live mapping with a restart-only setting inside is walked field by field.
  return !restartOnly.some((r) => under(r) || r.startsWith(`${path}.`));
}

/**
 * The fields of a key's entry that decide neither what it may use nor what it is shown: its name in
 * the audit log, its limits (which admit requests, and have admitted those running) and its expiry
 * (a key past it is refused by authenticating again). Any other field, one added later included,
 * counts as a change of its grants.
 */
const NOT_GRANTS: ReadonlySet<string> = new Set(['label', 'rate_limit', 'expires']);

interface ChangedKeys {
  /** Binding ids of keys removed or changed in any way (their grants or limits may differ now). */
  readonly any: ReadonlySet<string>;
  /** Those removed or changed in what they may use or are shown. */
  readonly grants: ReadonlySet<string>;
}

function changedKeys(before: Config, after: Config): ChangedKeys {
  const entries = (config: Config, skip: ReadonlySet<string>) =>
    new Map(
      config.keys.map((key) => [
        `k:${parseKeyHash(key.hash) ?? ''}`,
        JSON.stringify(Object.entries(key).filter(([field]) => !skip.has(field))),
      ]),
    );
  const differ = (skip: ReadonlySet<string>) => {
    const now = entries(after, skip);
    const changed = new Set<string>();
    for (const [binding, entry] of entries(before, skip))
      if (now.get(binding) !== entry) changed.add(binding);
    return changed;
  };
  return { any: differ(new Set()), grants: differ(NOT_GRANTS) };
}

/**
 * Authenticates each open stream and answer again with the new steps and ends those refused, those
 * that now authenticate as someone else, and those of a changed key: a GET or listen stream for any
 * change (it reconnects at once, and is admitted by the new limits), a POST's answer only for a
 * change of what the key may use or see. A tool call running upstream under a key whose limits
 * alone changed goes on: cutting it would lose an answer whose tool has run, and invite the client
 * to run it again. Returns how many were ended.
 */
async function endRefusedStreams(
  handler: ReloadParts<PipelineSteps>['handler'],
  steps: PipelineSteps,
  changed: ChangedKeys,
): Promise<number> {
  let ended = 0;
  for (const ctx of handler.answering()) {
    const before = ctx.principal;
    const probe: RequestContext = { ...ctx, principal: undefined, reason: undefined };
    let refused = false;
    // A stream its upstream has not answered yet is answered with this: the refusal its key now
    // gets, or (a changed key) 503 with Retry-After, to be opened again under the new config.
    let refusal: unknown = configReloaded();
    try {
      await steps.authenticate(probe);
    } catch (err) {
      refused = true;
      refusal = err;
    }
    const grantsKept =
      !refused &&
      before !== undefined &&
      probe.principal?.bindingId === before.bindingId &&
      !changed.grants.has(before.bindingId);
    const keep = grantsKept && !(handler.streams.has(ctx) && changed.any.has(before.bindingId));
    if (keep || ctx.res.writableEnded) continue;
    // An HTTP+SSE session's stream carries the answers to the requests of its POSTs: ended now, a
    // key whose label, limits or expiry alone changed lost the answers of tools that ran (told to
    // retry them), which a Streamable HTTP POST's answer keeps. It ends once it owes none, and at
    // the key's new expiry if that comes first: its client may go on using its session meanwhile
    // (refused, its running tool calls would lose their elicitations and its new calls would wait).
    const later = () => {
      ctx.reason ??= 'ERR_CONFIG_RELOADED';
      handler.endStream(ctx, refusal);
    };
    if (grantsKept && handler.owes(ctx, later)) {
      // Re-armed whatever the expiry it opened with: an earlier reload may have re-armed it already
      // (lifted or extended), and a key set back to its first expiry was taken for no change, so the
      // stream outlived it.
      handler.rewatch(ctx, probe.principal?.expiresAt);
      ended++;
      continue;
    }
    // Why its line ends it: the key's refusal now, or (a changed key) the reload itself.
    ctx.reason ??= probe.reason ?? 'ERR_CONFIG_RELOADED';
    handler.endStream(ctx, refusal);
    ended++;
  }
  return ended;
}

/**
 * V8's `gc` function, for the two places that run a collection of their own: the idle reclaim
 * (idle-reclaim.ts: one memory-reducing full collection after a burst of load) and the young sweep
 * (young-sweep.ts: a scavenge after large bodies). V8 offers it to JavaScript only through
 * `--expose-gc`.
 *
 * - `flag`: the process was started with `--expose-gc`, and its own `gc` is used. The executable
 *   and the container image always are (scripts/build-bin.ts sets it in the executable's execArgv);
 *   an npm install gets it with `NODE_OPTIONS=--expose-gc`.
 * - `context`: otherwise the flag is set for one new V8 context, which hands its `gc` over, and is
 *   unset at once, so no other code sees a `gc` function. It works, but it costs: with that second
 *   context made (its `gc` called or not), the pipeline spent 0.1-0.6x the floor's CPU per request
 *   more in alternating bench rounds (each process idle between its rounds, as a gateway is between
 *   bursts; under steady load, no difference) than the same build started with `--expose-gc`; perf saw
 *   Node's own `nextTick` go to the runtime for its object literal on every call (bench/README.md,
 *   "A second V8 context"). The startup line says which of the two a gateway runs with.
 * - `none`: this runtime offers neither; the sweep and the reclaim are off.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** The options V8's gc extension reads. */
export interface GcOptions {
  readonly type?: 'major' | 'minor';
  readonly flavor?: 'regular' | 'last-resort';
}

export type Gc = (options: GcOptions) => void;

export type GcSource = 'flag' | 'context' | 'none';

let exposed: Gc | null | undefined;
let source: GcSource = 'none';

/** V8's gc, or undefined when this runtime does not offer it (made once per process). */
export function exposedGc(): Gc | undefined {
  if (exposed === undefined) exposed = find() ?? null;
  return exposed ?? undefined;
}

/** How exposedGc() got its function (after it was first asked). */
export function gcSource(): GcSource {
  exposedGc();
  return source;
}

function find(): Gc | undefined {
  try {
    const own: unknown = (globalThis as { gc?: unknown }).gc;
    if (typeof own === 'function') {
      source = 'flag';
      return own as Gc;
    }
    const gc: unknown = exposedOnce();
    if (typeof gc !== 'function') return undefined;
    source = 'context';
    return gc as Gc;
  } catch {
    return undefined;
  }
}

/** `gc` from one new context made while --expose-gc is set, which is unset at once. */
function exposedOnce(): unknown {
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc');
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

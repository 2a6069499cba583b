/**
 * V8's `gc` function, for the two places that run a collection of their own: the idle reclaim
 * (idle-reclaim.ts: one memory-reducing full collection after a burst of load) and the young sweep
 * (young-sweep.ts: a scavenge after large bodies). V8 offers it to JavaScript only through
 * `--expose-gc`; the flag is set for the one context created here and unset at once, so no other
 * code sees a `gc` function. A process started with `--expose-gc` (by its operator) keeps the flag
 * as it is, and its own `gc` is used.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** The options V8's gc extension reads. */
export interface GcOptions {
  readonly type?: 'major' | 'minor';
  readonly flavor?: 'regular' | 'last-resort';
}

export type Gc = (options: GcOptions) => void;

let exposed: Gc | null | undefined;

/** V8's gc, or undefined when this runtime does not offer it (made once per process). */
export function exposedGc(): Gc | undefined {
  if (exposed === undefined) exposed = find() ?? null;
  return exposed ?? undefined;
}

function find(): Gc | undefined {
  try {
    const own: unknown = (globalThis as { gc?: unknown }).gc;
    const gc: unknown = typeof own === 'function' ? own : exposedOnce();
    return typeof gc === 'function' ? (gc as Gc) : undefined;
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

/**
 * A young-generation collection after every few MiB of upstream body, so that the buffers those
 * bodies came in are freed by a scavenge and not by a full mark-compact.
 *
 * Every socket read hands the relay a fresh Buffer whose memory lives outside V8's heap; a list
 * response of 660 KiB arrives as a dozen of them, and its rewrite adds one more. They die as soon as
 * the response is written, but only a collection frees them, and until then V8 counts their bytes
 * (all external memory allocated since the last mark-compact) against the old generation's limit:
 * after about 8 MiB of them it starts a full mark-compact, whatever the heap holds. Serving lists,
 * a gateway whose young generation rarely fills ran one every ten to fifteen lists, each holding
 * the event loop for 5–20 ms in marking steps and its final pause (`--trace-gc`, "finalize
 * incremental marking via task"), which is the p99 of a list; a do-nothing proxy relaying the same
 * bytes pays the same. A scavenge frees the dead buffers too, for a fraction of a millisecond when
 * few objects are alive, and the count starts again. So once EVERY_BYTES of body have been read
 * (upstream responses by the relay, request bodies by read-body.ts), one scavenge runs at the next
 * turn of the event loop (after the response that crossed the mark is written). Small answers
 * reach the mark only after thousands of requests, by which time V8 has scavenged several times on
 * its own: the cost is one check per chunk.
 */
import { exposedGc } from './gc-access.ts';

/** Bytes of body read between two scavenges: well under V8's ~8 MiB before a mark-compact. */
export const EVERY_BYTES = 2 * 1024 * 1024;

export interface YoungSweepOptions {
  /** Runs one young-generation collection. */
  readonly collect: () => void;
  /** Runs `fn` once, later (setImmediate). */
  readonly schedule: (fn: () => void) => void;
  readonly everyBytes: number;
}

export class YoungSweep {
  readonly #collect: () => void;
  readonly #schedule: (fn: () => void) => void;
  readonly #every: number;
  #bytes = 0;
  #pending = false;
  #sweeps = 0;

  constructor(options: YoungSweepOptions) {
    if (!Number.isSafeInteger(options.everyBytes) || options.everyBytes <= 0)
      throw new TypeError('YoungSweep: everyBytes must be a positive integer');
    this.#collect = options.collect;
    this.#schedule = options.schedule;
    this.#every = options.everyBytes;
  }

  /** `n` bytes of body were read from a socket (their buffer dies once relayed or parsed). */
  add(n: number): void {
    this.#bytes += n;
    if (this.#bytes < this.#every || this.#pending) return;
    this.#pending = true;
    this.#schedule(this.#run);
  }

  /** Scavenges run so far. */
  get sweeps(): number {
    return this.#sweeps;
  }

  readonly #run = (): void => {
    this.#pending = false;
    this.#bytes = 0;
    this.#sweeps++;
    this.#collect();
  };
}

/** The sweep with V8's scavenge, or undefined when this runtime offers no collection. */
export function createYoungSweep(everyBytes = EVERY_BYTES): YoungSweep | undefined {
  const gc = exposedGc();
  if (gc === undefined) return undefined;
  return new YoungSweep({ collect: () => gc({ type: 'minor' }), schedule: setImmediate, everyBytes });
}

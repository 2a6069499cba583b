/**
 * Gives memory back once a burst of load is over (`limits.idle_reclaim`).
 *
 * Under load V8 grows its young generation to its maximum (two 64 MiB semi-spaces on Node 24) and
 * keeps freed old-generation pages in a pool. Nothing shrinks them again by itself: V8's memory
 * reducer starts only after a mark-compact that freed committed memory, which a gateway whose
 * requests die young seldom runs, and an idle gateway allocates nothing that would trigger one. So
 * a gateway that served one burst kept its peak RSS for good (bench/soak.ts: 239 MiB after a 30 s
 * pause, of which V8 used 20 MB). The list memo and the spare list buffers hold up to 16 MiB each.
 *
 * So every `afterMs`, when the event loop was busy less than 1% of that time (a gateway so loaded
 * serves a few dozen requests a second at most), the caches are dropped and, when V8 holds at least
 * 32 MiB more than it uses, one memory-reducing full collection runs: the one V8 runs under memory
 * pressure, which shrinks the young generation and returns pooled pages. It pauses the event loop
 * once, at most once per quiet period and only after a busy one: about 0.1 s for a small heap on
 * the 2-core bench machine, longer for a large live heap (0.4–0.7 s with 2,000 GET streams open,
 * measured under load). V8 offers that collection to JavaScript only through `--expose-gc`
 * (gc-access.ts).
 */
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { dropSpares } from '../proxy/body-buffer.ts';
import { clearListScanMemo } from '../policy/list-scan-memo.ts';
import type { Logger } from '../log/types.ts';
import { exposedGc } from './gc-access.ts';

/** Below this share of the last period spent running, the gateway counts as idle. */
export const IDLE_UTILIZATION = 0.01;
/** V8 holding at least this much more than it uses is worth a collection. */
export const MIN_SLACK_BYTES = 32 * 1024 * 1024;

export interface Reclaimed {
  /** Bytes the caches held (list memo copies, spare list buffers). */
  readonly cacheBytes: number;
  /** Whether the memory-reducing collection ran. */
  readonly collected: boolean;
  /** V8's committed heap before and after, in bytes. */
  readonly heapBefore: number;
  readonly heapAfter: number;
  /** How long the event loop was held, in ms. */
  readonly pauseMs: number;
}

export interface IdleReclaim {
  /** Quiet periods that gave memory back so far. */
  readonly reclaims: number;
  stop(): void;
}

type Collect = () => void;

/** The memory-reducing collection, or undefined when this runtime does not offer it. */
export function memoryReducingCollection(): Collect | undefined {
  const gc = exposedGc();
  if (gc === undefined) return undefined;
  return () => gc({ type: 'major', flavor: 'last-resort' });
}

export function startIdleReclaim(options: {
  readonly afterMs: number;
  readonly log: Logger;
  /** Called after each reclaim (tests). */
  readonly onReclaim?: (r: Reclaimed) => void;
}): IdleReclaim {
  const collect = memoryReducingCollection();
  if (collect === undefined)
    options.log.warn({}, 'idle memory reclaim: this runtime offers no memory-reducing collection');
  let armed = true;
  let reclaims = 0;
  let last = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    if (busy >= IDLE_UTILIZATION) {
      armed = true;
      return;
    }
    if (!armed) return;
    armed = false;
    const r = reclaim(collect);
    last = performance.eventLoopUtilization();
    if (r.cacheBytes === 0 && !r.collected) return;
    reclaims++;
    options.log.debug(
      {
        cache_bytes: r.cacheBytes,
        heap_before: r.heapBefore,
        heap_after: r.heapAfter,
        pause_ms: Math.round(r.pauseMs),
      },
      'idle: gave back memory',
    );
    options.onReclaim?.(r);
  }, options.afterMs);
  timer.unref();
  return {
    get reclaims() {
      return reclaims;
    },
    stop: () => clearInterval(timer),
  };
}

function reclaim(collect: Collect | undefined): Reclaimed {
  const start = performance.now();
  const cacheBytes = clearListScanMemo() + dropSpares();
  const before = getHeapStatistics();
  const heapBefore = before.total_heap_size;
  const slack = heapBefore - before.used_heap_size;
  const collected = collect !== undefined && slack >= MIN_SLACK_BYTES;
  if (collected) collect();
  const heapAfter = collected ? getHeapStatistics().total_heap_size : heapBefore;
  return { cacheBytes, collected, heapBefore, heapAfter, pauseMs: performance.now() - start };
}

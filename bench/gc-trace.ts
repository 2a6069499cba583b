/**
 * What a process's `--trace-gc-nvp` lines say about its garbage collection over a stretch of its
 * log: how often it scavenged and ran a full mark-compact per 1,000 requests, how long those pauses
 * were, how many bytes it allocated per request, and how many of them survived a scavenge (copied
 * within the young generation or promoted to the old one). Survival is the figure that matters for
 * the tail: a scavenge's pause grows with what it copies, and what it promotes is what the next
 * mark-compact has to sweep. ab.ts reads each target's log between the start and the end of every
 * measured round (`logBytes()` before and after), so warm-ups are left out.
 */
import { openSync, readSync, closeSync, statSync } from 'node:fs';

export interface GcTotals {
  scavenges: number;
  scavengeMs: number;
  /** Each scavenge's pause, for a percentile. */
  readonly pauses: number[];
  markCompacts: number;
  markCompactMs: number;
  /** Bytes allocated since the collection before, summed over collections. */
  allocated: number;
  /** Young objects a scavenge kept: copied within the young generation, and promoted. */
  survived: number;
  promoted: number;
}

export const emptyGc = (): GcTotals => ({
  scavenges: 0,
  scavengeMs: 0,
  pauses: [],
  markCompacts: 0,
  markCompactMs: 0,
  allocated: 0,
  survived: 0,
  promoted: 0,
});

/** The size of a log file now (0 when it does not exist), to mark where a round starts. */
export function logBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

const WRAPPED = 2 ** 48;

/** Adds the collections logged in `path` between byte offsets `from` and `to` to `into`. */
export function addGcLines(into: GcTotals, path: string, from: number, to: number): void {
  if (to <= from) return;
  const buf = Buffer.alloc(to - from);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  for (const line of buf.toString('latin1').split('\n')) {
    const kind = field(line, 'gc');
    if (kind === undefined) continue;
    const pause = Number(field(line, 'pause') ?? 0);
    const allocated = Number(field(line, 'allocated') ?? 0);
    // A mark-compact's line can carry a wrapped-around (negative) size_t: left out.
    if (allocated < WRAPPED) into.allocated += allocated;
    if (kind === 's') {
      into.scavenges++;
      into.scavengeMs += pause;
      into.pauses.push(pause);
      into.survived += Number(field(line, 'new_space_survived') ?? 0);
      into.promoted += Number(field(line, 'promoted') ?? 0);
    } else if (kind === 'mc' || kind === 'ms') {
      into.markCompacts++;
      into.markCompactMs += pause;
    }
  }
}

function field(line: string, name: string): string | undefined {
  const at = line.indexOf(` ${name}=`);
  if (at < 0) return undefined;
  const start = at + name.length + 2;
  const end = line.indexOf(' ', start);
  return line.slice(start, end < 0 ? undefined : end);
}

/** One line: per 1,000 requests, pauses, bytes per request and the share that survived. */
export function describeGc(gc: GcTotals, requests: number): string {
  if (gc.scavenges + gc.markCompacts === 0) return 'no --trace-gc-nvp lines';
  const per1k = (n: number) => ((n * 1000) / requests).toFixed(2);
  const sorted = [...gc.pauses].sort((a, b) => a - b);
  const p90 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))] ?? 0;
  const kept = gc.survived + gc.promoted;
  return (
    `scavenges ${per1k(gc.scavenges)}/1k req (mean ${(gc.scavengeMs / Math.max(1, gc.scavenges)).toFixed(1)} ms, ` +
    `p90 ${p90.toFixed(1)}, max ${(sorted.at(-1) ?? 0).toFixed(1)})  ` +
    `mark-compacts ${per1k(gc.markCompacts)}/1k req (${gc.markCompactMs.toFixed(0)} ms)  ` +
    `allocated ${Math.round(gc.allocated / requests)} B/req  ` +
    `survived ${Math.round(kept / requests)} B/req (${((kept / Math.max(1, gc.allocated)) * 100).toFixed(1)}%), ` +
    `promoted ${Math.round(gc.promoted / requests)} B/req  ` +
    `GC pause ${(((gc.scavengeMs + gc.markCompactMs) * 1000) / requests).toFixed(1)} µs/req`
  );
}

/**
 * Heap snapshots of a benchmark's gateway, taken from outside: the gateway runs with
 * `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR`, SIGUSR2 makes it collect garbage and write a
 * snapshot, and this module counts the live objects of each snapshot by constructor, so two of them
 * show what grew (a leak: something per request, key, session or tag that is never let go).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const snapshotArgs = (dir: string): string[] => [
  '--heapsnapshot-signal=SIGUSR2',
  `--diagnostic-dir=${dir}`,
];

/** Signals `pid` and waits until a new, complete `.heapsnapshot` appears in `dir`; returns its path. */
export async function takeSnapshot(pid: number, dir: string, timeoutMs = 60_000): Promise<string> {
  const before = new Set(snapshots(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  while (Date.now() < deadline) {
    await sleep(250);
    const fresh = snapshots(dir).find((f) => !before.has(f));
    if (fresh === undefined) continue;
    const size = statSync(fresh).size;
    // Written in one go, then closed: the size stops changing and the JSON ends.
    if (size === last && size > 0 && readFileSync(fresh, 'latin1').trimEnd().endsWith('}')) return fresh;
    last = size;
  }
  throw new Error('no heap snapshot written in time');
}

function snapshots(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.heapsnapshot'))
    .map((f) => join(dir, f));
}

export interface HeapCounts {
  /** Self size in bytes and count, by node type and name (constructor for objects). */
  readonly byName: Map<string, { count: number; bytes: number }>;
  readonly totalBytes: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

export function countHeap(path: string): HeapCounts {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const byName = new Map<string, { count: number; bytes: number }>();
  let totalBytes = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] as number] ?? '?';
    const name =
      type === 'object' || type === 'closure' ? (snap.strings[snap.nodes[i + nameAt] as number] ?? '?') : '';
    const key = name === '' ? `(${type})` : `${name}`;
    const size = snap.nodes[i + sizeAt] as number;
    totalBytes += size;
    const entry = byName.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += size;
    byName.set(key, entry);
  }
  return { byName, totalBytes };
}

/** The `top` names whose bytes grew most from `a` to `b`, one line each. */
export function growth(a: HeapCounts, b: HeapCounts, top = 12): string[] {
  const rows: { name: string; count: number; bytes: number }[] = [];
  for (const [name, after] of b.byName) {
    const before = a.byName.get(name) ?? { count: 0, bytes: 0 };
    rows.push({ name, count: after.count - before.count, bytes: after.bytes - before.bytes });
  }
  rows.sort((x, y) => y.bytes - x.bytes);
  return rows
    .slice(0, top)
    .map(
      (r) => `${r.name}: ${r.count >= 0 ? '+' : ''}${r.count} objects, ${(r.bytes / 1024).toFixed(1)} KiB`,
    );
}

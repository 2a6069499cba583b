/**
 * Result rows, their formatting as a Markdown table (the same text goes to stdout and to the
 * README), the machine description, and the README's "Latest results" blocks.
 */
import { cpus, release } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';

export type Status = 'PASS' | 'MISS' | '';

export interface Row {
  readonly metric: string;
  readonly baseline: string;
  readonly measured: string;
  /** The ratio or difference between measured and baseline. */
  readonly compare: string;
  readonly target: string;
  readonly status: Status;
}

export const us = (v: number): string => (v < 1000 ? `${Math.round(v)} µs` : `${(v / 1000).toFixed(2)} ms`);
export const rps = (v: number): string => `${Math.round(v).toLocaleString('en-US')} req/s`;
export const pct = (v: number): string => `${(v * 100).toFixed(1)}%`;
export const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;
export const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
const signed = (v: number) => (v >= 0 ? `+${us(v)}` : `−${us(-v)}`);

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Throughput of `measured` as a share of `baseline`; PASS when at least `min`. */
export function throughputRow(
  metric: string,
  base: [string, number],
  got: [string, number],
  min?: number,
): Row {
  const ratio = got[1] / base[1];
  return {
    metric,
    baseline: `${base[0]} ${rps(base[1])}`,
    measured: `${got[0]} ${rps(got[1])}`,
    compare: pct(ratio),
    target: min === undefined ? '' : `≥ ${pct(min)}`,
    status: min === undefined ? '' : ratio >= min ? 'PASS' : 'MISS',
  };
}

/** Latency added by `measured` over `baseline`; PASS when at most `maxAdded` µs. */
export function latencyRow(
  metric: string,
  base: [string, number],
  got: [string, number],
  maxAdded?: number,
): Row {
  const added = got[1] - base[1];
  return {
    metric,
    baseline: `${base[0]} ${us(base[1])}`,
    measured: `${got[0]} ${us(got[1])}`,
    compare: `${signed(added)} (${(got[1] / base[1]).toFixed(2)}×)`,
    target: maxAdded === undefined ? '' : `≤ +${us(maxAdded)}`,
    status: maxAdded === undefined ? '' : added <= maxAdded ? 'PASS' : 'MISS',
  };
}

/** A latency of `measured` as a multiple of `baseline`'s; PASS when the ratio is at most `max`. */
export function ratioRow(metric: string, base: [string, number], got: [string, number], max: number): Row {
  return capped(latencyRow(metric, base, got), got[1] / base[1], max);
}

/** `row` with the target "at most `max` times" and whether `ratio` meets it. */
export function capped(row: Row, ratio: number, max: number): Row {
  return { ...row, target: `≤ ${max.toFixed(2)}×`, status: ratio <= max ? 'PASS' : 'MISS' };
}

export function infoRow(metric: string, baseline: string, measured: string, compare: string): Row {
  return { metric, baseline, measured, compare, target: '', status: '' };
}

export function checkRow(metric: string, measured: string, target: string, ok: boolean): Row {
  return { metric, baseline: '', measured, compare: '', target, status: ok ? 'PASS' : 'MISS' };
}

const HEAD = ['Metric', 'Baseline', 'Measured', 'Ratio / added', 'Target', ''];

export function table(rows: readonly Row[]): string {
  const cells = [HEAD, ...rows.map((r) => [r.metric, r.baseline, r.measured, r.compare, r.target, r.status])];
  const widths = HEAD.map((_, i) => Math.max(3, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: readonly string[]) => `| ${c.map((v, i) => v.padEnd(widths[i] as number)).join(' | ')} |`;
  return [
    line(HEAD),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...cells.slice(1).map(line),
  ].join('\n');
}

/** The machine line; `loadBefore` is the 1-minute load average before the bench started anything. */
export function machine(loadGenerator: string, loadBefore: number): string {
  const cpu = cpus();
  return (
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ` +
    `${cpu.length} cores · Linux ${release()} · Node ${process.version} · ${loadGenerator} · ` +
    `load average before the run ${loadBefore.toFixed(2)}`
  );
}

const RESULTS = '## Latest results';

/**
 * Replaces the block between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in the README
 * (creating it at the end of the "Latest results" section when missing). Other blocks are kept, so
 * running one scenario refreshes only its own table.
 */
export function updateReadme(path: string, name: string, body: string): void {
  let text = readFileSync(path, 'utf8');
  const open = `<!-- results:${name} -->`;
  const close = `<!-- /results:${name} -->`;
  const block = `${open}\n${body.trim()}\n${close}`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start !== -1 && end > start) {
    text = text.slice(0, start) + block + text.slice(end + close.length);
  } else {
    if (!text.includes(RESULTS)) text = `${text.trimEnd()}\n\n${RESULTS}\n`;
    const at = text.indexOf(RESULTS);
    const next = text.indexOf('\n## ', at + RESULTS.length);
    const insertAt = next === -1 ? text.length : next + 1;
    const before = text.slice(0, insertAt).trimEnd();
    text = `${before}\n\n${block}\n${next === -1 ? '' : `\n${text.slice(insertAt)}`}`;
  }
  writeFileSync(path, text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * Counters and histograms kept as plain numbers, turned into Prometheus samples only at scrape time.
 *
 * prom-client's `inc`/`observe` build a label object and a hash string on every call, even on a
 * cached child: per request that is garbage for the young generation. Here a series is a small
 * record found by its (bounded) label values in nested Maps, created once; counting is `+= 1` on
 * it. At scrape time each family hands the registry the same sample list a prom-client Counter or
 * Histogram would, so the text exposition is unchanged (same names, label order, `le` values,
 * series in first-seen order).
 *
 * Label values must come from bounded sets (see labels.ts): a series is never removed.
 */
import type { Registry } from 'prom-client';

/** One series of a counter. */
export interface CounterCell {
  value: number;
}

/** One series of a histogram: per-bucket counts (not cumulative), sum and count. */
export interface HistogramCell {
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

interface Sample {
  readonly metricName?: string;
  readonly labels: Record<string, string | number>;
  readonly sharedLabels?: Record<string, string>;
  readonly value: number;
}

interface Exported {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

/** The part of prom-client's metric interface a Registry reads. */
abstract class Family<C> {
  readonly aggregator = 'sum';
  abstract readonly type: 'counter' | 'histogram';
  /** Series in creation order, with their label objects (built once, at creation). */
  protected readonly series: { readonly labels: Record<string, string>; readonly cell: C }[] = [];
  readonly #byFirst = new Map<string, C | Map<string, C>>();

  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (labelNames.length > 2) throw new TypeError('at most two labels');
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected abstract create(): C;

  /** The series for these label values (as many as labelNames), created on first use. */
  cell(a = '', b = ''): C {
    const n = this.labelNames.length;
    const first = this.#byFirst.get(a);
    if (n < 2) return (first as C | undefined) ?? this.#add(a, b);
    const cell = first === undefined ? undefined : (first as Map<string, C>).get(b);
    return cell ?? this.#add(a, b);
  }

  #add(a: string, b: string): C {
    const names = this.labelNames;
    const labels: Record<string, string> = {};
    if (names.length > 0) labels[names[0]!] = a;
    if (names.length > 1) labels[names[1]!] = b;
    const cell = this.create();
    this.series.push({ labels, cell });
    if (names.length < 2) this.#byFirst.set(a, cell);
    else {
      let inner = this.#byFirst.get(a) as Map<string, C> | undefined;
      if (inner === undefined) this.#byFirst.set(a, (inner = new Map()));
      inner.set(b, cell);
    }
    return cell;
  }

  /** Adds this family to a registry (prom-client formats it like its own metrics). */
  register(registry: Registry): this {
    registry.registerMetric(this as never);
    return this;
  }

  protected abstract samples(): Sample[];

  async get(): Promise<Exported> {
    const exported = this.getForPromString();
    // getMetricsAsJSON's shape: shared labels merged into each sample's labels.
    exported.values = exported.values.map((s) => ({
      metricName: s.metricName,
      value: s.value,
      labels: { ...s.labels, ...s.sharedLabels },
    }));
    return exported;
  }

  getForPromString(): Exported {
    return { name: this.name, help: this.help, type: this.type, values: this.samples(), aggregator: 'sum' };
  }
}

export class CounterFamily extends Family<CounterCell> {
  readonly type = 'counter';

  protected create(): CounterCell {
    return { value: 0 };
  }

  protected samples(): Sample[] {
    return this.series.map(({ labels, cell }) => ({ labels, value: cell.value }));
  }
}

export class HistogramFamily extends Family<HistogramCell> {
  readonly type = 'histogram';
  readonly #bounds: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]) {
    super(name, help, labelNames);
    this.#bounds = [...bounds].sort((x, y) => x - y);
    // Like prom-client, a histogram without labels exports its (zero) series from the start.
    if (labelNames.length === 0) this.cell();
  }

  protected create(): HistogramCell {
    return { buckets: new Float64Array(this.#bounds.length), sum: 0, count: 0 };
  }

  /** Counts `value` in `cell` (a value above every bound only reaches +Inf, sum and count). */
  observe(cell: HistogramCell, value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        cell.buckets[i]!++;
        break;
      }
    }
    cell.sum += value;
    cell.count++;
  }

  protected samples(): Sample[] {
    const bucket = `${this.name}_bucket`;
    const out: Sample[] = [];
    for (const { labels, cell } of this.series) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += cell.buckets[i]!;
        out.push({ metricName: bucket, labels: { le: this.#bounds[i]! }, sharedLabels: labels, value: acc });
      }
      out.push({ metricName: bucket, labels: { le: '+Inf' }, sharedLabels: labels, value: cell.count });
      out.push({ metricName: `${this.name}_sum`, labels: {}, sharedLabels: labels, value: cell.sum });
      out.push({ metricName: `${this.name}_count`, labels: {}, sharedLabels: labels, value: cell.count });
    }
    return out;
  }
}

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { CounterFamily, HistogramFamily } from '../../../src/metrics/table.ts';
import { DURATION_BUCKETS } from '../../../src/metrics/metrics.ts';

describe('metric table (plain counters, samples at scrape time)', () => {
  it('renders exactly what prom-client renders for the same observations', async () => {
    const mine = new Registry();
    const theirs = new Registry();
    const counter = new CounterFamily('t_requests_total', 'Requests.', ['decision', 'rpc_method']).register(
      mine,
    );
    const single = new CounterFamily('t_errors_total', 'Errors by kind.', ['kind']).register(mine);
    const byDecision = new HistogramFamily(
      't_duration_seconds',
      'Durations.',
      ['decision'],
      [...DURATION_BUCKETS],
    ).register(mine);
    const plain = new HistogramFamily('t_upstream_seconds', 'Upstream.', [], DURATION_BUCKETS).register(mine);
    const pc = new Counter({
      name: 't_requests_total',
      help: 'Requests.',
      labelNames: ['decision', 'rpc_method'],
      registers: [theirs],
    });
    const ps = new Counter({
      name: 't_errors_total',
      help: 'Errors by kind.',
      labelNames: ['kind'],
      registers: [theirs],
    });
    const ph = new Histogram({
      name: 't_duration_seconds',
      help: 'Durations.',
      labelNames: ['decision'],
      buckets: [...DURATION_BUCKETS],
      registers: [theirs],
    });
    const pp = new Histogram({
      name: 't_upstream_seconds',
      help: 'Upstream.',
      buckets: [...DURATION_BUCKETS],
      registers: [theirs],
    });

    // An empty labelled histogram has no series; an unlabelled one exports zeros.
    assert.equal(await mine.metrics(), await theirs.metrics());

    for (const kind of ['refused', 'reset']) {
      single.cell(kind);
      ps.labels(kind).inc(0);
    }
    const seen: [string, string, number][] = [
      ['allow', 'tools/call', 0.0004],
      ['deny', 'tools/call', 0.0025], // exactly on a bound
      ['allow', 'tools/list', 0.07],
      ['allow', 'tools/call', 120], // above every bound: +Inf only
      ['rate_limited', 'other', 0.011],
      ['allow', 'tools/call', 0.1 + 0.2],
    ];
    for (const [decision, method, seconds] of seen) {
      counter.cell(decision, method).value++;
      pc.labels(decision, method).inc();
      byDecision.observe(byDecision.cell(decision), seconds);
      ph.labels(decision).observe(seconds);
      plain.observe(plain.cell(), seconds / 3);
      pp.observe(seconds / 3);
    }
    single.cell('reset').value++;
    ps.labels('reset').inc();
    const text = await mine.metrics();
    assert.equal(text, await theirs.metrics());
    assert.match(text, /^t_duration_seconds_bucket\{le="0.0025",decision="deny"\} 1$/m);
    assert.match(text, /^t_requests_total\{decision="allow",rpc_method="tools\/call"\} 3$/m);
  });

  it('a series is found again by its label values, not duplicated', () => {
    const family = new CounterFamily('t_total', 'T.', ['a', 'b']);
    const cell = family.cell('x', 'y');
    cell.value += 2;
    assert.equal(family.cell('x', 'y'), cell);
    assert.notEqual(family.cell('x', 'z'), cell);
    assert.notEqual(family.cell('y', 'x'), cell);
    assert.equal(family.getForPromString().values.length, 3);
  });
});

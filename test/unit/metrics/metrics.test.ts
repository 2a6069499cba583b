import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMetrics } from '../../../src/metrics/metrics.ts';
import type { Metrics, MetricsOptions } from '../../../src/metrics/metrics.ts';
import { metricsRoute } from '../../../src/metrics/route.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { fakeContext, keyPrincipal, oauthPrincipal } from '../audit/fake-context.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small parser for the Prometheus text format (0.0.4): samples plus TYPE lines. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (m) types.set(m[1]!, m[2]!);
      else assert.match(line, /^# HELP \S+ /, `comment line: ${line}`);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/y;
      let rest: RegExpExecArray | null;
      let consumed = 0;
      while ((rest = re.exec(m[2])) !== null) {
        labels[rest[1]!] = rest[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        consumed = re.lastIndex;
      }
      assert.equal(consumed, m[2].length, `labels fully parsed: ${m[2]}`);
    }
    const raw = m[3]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    // Go's ParseFloat (Prometheus) takes NaN in any case; prom-client writes "Nan".
    assert.ok(!Number.isNaN(value) || raw.toLowerCase() === 'nan', `value: ${raw}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types };
}

/** The value of one sample (0 when absent, as Prometheus treats a missing counter). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(labels).length === Object.keys(s.labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `one sample for ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value ?? 0;
}

async function scrape(metrics: Metrics): Promise<Sample[]> {
  const { contentType, body } = await metrics.render();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  return parse(body).samples;
}

const METHODS = ['initialize', 'tools/list', 'tools/call', 'prompts/get', 'resources/read'];
const options: MetricsOptions = {
  knownTools: ['echo', 'search', 'db_*'],
  knownMethods: METHODS,
  keyLabels: ['alice', 'bob'],
};

function toolCtx(
  tool: string,
  decision: RequestContext['decision'] = 'allow',
  extra: Partial<RequestContext> = {},
) {
  return fakeContext({
    calls: [{ rpc_method: 'tools/call', rpc_id: 1, tool, decision }],
    upstreamMs: decision === 'allow' ? 2 : undefined,
    ...extra,
  });
}

describe('metrics', () => {
  it('exposes every documented metric with its type, in its own registry', async () => {
    const metrics = createMetrics(options);
    const { types } = parse((await metrics.render()).body);
    assert.equal(types.get('mcpgate_requests_total'), 'counter');
    assert.equal(types.get('mcpgate_tool_calls_total'), 'counter');
    assert.equal(types.get('mcpgate_rate_limited_total'), 'counter');
    assert.equal(types.get('mcpgate_upstream_errors_total'), 'counter');
    assert.equal(types.get('mcpgate_request_duration_seconds'), 'histogram');
    assert.equal(types.get('mcpgate_upstream_duration_seconds'), 'histogram');
    assert.equal(types.get('mcpgate_open_streams'), 'gauge');
    // A second instance is independent (no global registry).
    const other = createMetrics(options);
    metrics.streamOpened();
    assert.equal(value(await scrape(other), 'mcpgate_open_streams'), 0);
  });

  it('counters move by exactly the number observed', async () => {
    const metrics = createMetrics(options);
    const before = await scrape(metrics);
    for (let i = 0; i < 7; i++) metrics.observe(toolCtx('echo'), 1010);
    for (let i = 0; i < 3; i++) {
      metrics.observe(toolCtx('search', 'deny', { reason: 'ERR_TOOL_DENIED' }), 1010);
    }
    metrics.observe(
      fakeContext({ decision: 'unauthenticated', reason: 'ERR_AUTH_MISSING', principal: undefined }),
      1001,
    );
    const after = await scrape(metrics);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels);

    assert.equal(delta('mcpgate_requests_total', { decision: 'allow', rpc_method: 'tools/call' }), 7);
    assert.equal(delta('mcpgate_requests_total', { decision: 'deny', rpc_method: 'tools/call' }), 3);
    assert.equal(delta('mcpgate_requests_total', { decision: 'unauthenticated', rpc_method: 'none' }), 1);
    assert.equal(delta('mcpgate_tool_calls_total', { tool: 'echo', decision: 'allow' }), 7);
    assert.equal(delta('mcpgate_tool_calls_total', { tool: 'search', decision: 'deny' }), 3);
    assert.equal(delta('mcpgate_request_duration_seconds_count', { decision: 'allow' }), 7);
    // 10 ms each: in the 0.01 bucket, not in the 0.005 one.
    assert.equal(delta('mcpgate_request_duration_seconds_bucket', { decision: 'allow', le: '0.01' }), 7);
    assert.equal(delta('mcpgate_request_duration_seconds_bucket', { decision: 'allow', le: '0.005' }), 0);
    assert.ok(Math.abs(delta('mcpgate_request_duration_seconds_sum', { decision: 'allow' }) - 0.07) < 1e-9);
    assert.equal(delta('mcpgate_upstream_duration_seconds_count'), 7);
    assert.ok(Math.abs(delta('mcpgate_upstream_duration_seconds_sum') - 0.014) < 1e-9);
  });

  it('an unknown tool is `other`; only exact allowlist names are labels; wildcards are not', async () => {
    const metrics = createMetrics(options);
    metrics.observe(toolCtx('not_in_any_list'), 1001);
    metrics.observe(toolCtx('db_*'), 1001);
    metrics.observe(toolCtx('x'.repeat(500)), 1001);
    const s = await scrape(metrics);
    assert.equal(value(s, 'mcpgate_tool_calls_total', { tool: 'other', decision: 'allow' }), 3);
    assert.ok(!s.some((x) => x.labels.tool === 'not_in_any_list' || x.labels.tool === 'db_*'));
    assert.equal('learnTools' in metrics, false, 'no way to add a label from upstream data');
  });

  it('rpc_method is bounded: known, batch, none or other', async () => {
    const metrics = createMetrics({
      ...options,
      knownMethods: new Map(METHODS.map((m) => [m.toLowerCase(), m])),
    });
    metrics.observe(
      fakeContext({ calls: [{ rpc_method: 'tools/list', rpc_id: 1, decision: 'allow' }] }),
      1001,
    );
    metrics.observe(
      fakeContext({ calls: [{ rpc_method: 'evil/' + 'z'.repeat(50), rpc_id: 1, decision: 'deny' }] }),
      1001,
    );
    metrics.observe(fakeContext({ messages: [{ jsonrpc: '2.0', id: 1, method: 'initialize' }] }), 1001);
    metrics.observe(
      fakeContext({
        batch: true,
        calls: [
          { rpc_method: 'tools/call', rpc_id: 1, tool: 'echo', decision: 'allow' },
          {
            rpc_method: 'tools/call',
            rpc_id: 2,
            tool: 'search',
            decision: 'deny',
            reason: 'ERR_TOOL_DENIED',
          },
        ],
        decision: 'deny',
        reason: 'ERR_BATCH_DENIED',
      }),
      1001,
    );
    metrics.observe(fakeContext({}, 'GET'), 5000);
    const s = await scrape(metrics);
    assert.equal(value(s, 'mcpgate_requests_total', { decision: 'allow', rpc_method: 'tools/list' }), 1);
    assert.equal(value(s, 'mcpgate_requests_total', { decision: 'deny', rpc_method: 'other' }), 1);
    assert.equal(value(s, 'mcpgate_requests_total', { decision: 'allow', rpc_method: 'initialize' }), 1);
    assert.equal(value(s, 'mcpgate_requests_total', { decision: 'deny', rpc_method: 'batch' }), 1);
    assert.equal(value(s, 'mcpgate_requests_total', { decision: 'allow', rpc_method: 'none' }), 1);
    // A refused batch refuses its allowed calls too.
    assert.equal(value(s, 'mcpgate_tool_calls_total', { tool: 'echo', decision: 'deny' }), 1);
    assert.equal(value(s, 'mcpgate_tool_calls_total', { tool: 'search', decision: 'deny' }), 1);
    // GET streams are not in the duration histogram.
    const durations = s.filter((x) => x.name === 'mcpgate_request_duration_seconds_count');
    assert.equal(
      durations.reduce((n, x) => n + x.value, 0),
      4,
    );
  });

  it('rate limited: by configured key label, `oauth` for subjects, never a store outage', async () => {
    const metrics = createMetrics(options);
    const limited = (extra: Partial<RequestContext>) =>
      fakeContext({ decision: 'rate_limited', reason: 'ERR_RATE_LIMITED', status: 429, ...extra });
    metrics.observe(limited({ principal: keyPrincipal('alice') }), 1001);
    metrics.observe(limited({ principal: keyPrincipal('alice') }), 1001);
    metrics.observe(limited({ principal: keyPrincipal('removed-key') }), 1001);
    metrics.observe(limited({ principal: oauthPrincipal('sub-1') }), 1001);
    metrics.observe(limited({ principal: oauthPrincipal('sub-2') }), 1001);
    metrics.observe(
      limited({ principal: keyPrincipal('bob'), reason: 'ERR_RATE_LIMIT_STORE', status: 503 }),
      1001,
    );
    const s = await scrape(metrics);
    assert.equal(value(s, 'mcpgate_rate_limited_total', { key: 'alice' }), 2);
    assert.equal(value(s, 'mcpgate_rate_limited_total', { key: 'other' }), 1);
    assert.equal(value(s, 'mcpgate_rate_limited_total', { key: 'oauth' }), 2);
    assert.equal(value(s, 'mcpgate_rate_limited_total', { key: 'bob' }), 0);
    assert.ok(!s.some((x) => x.labels.key?.startsWith('sub-')));
  });

  it('upstream errors by kind (zeros exported from the start), open streams up and down', async () => {
    const metrics = createMetrics(options);
    const initial = await scrape(metrics);
    for (const kind of ['refused', 'reset', 'timeout', 'protocol', 'other']) {
      assert.equal(
        initial.some((x) => x.name === 'mcpgate_upstream_errors_total' && x.labels.kind === kind),
        true,
        kind,
      );
    }
    metrics.upstreamError('timeout');
    metrics.upstreamError('timeout');
    metrics.upstreamError('refused');
    metrics.upstreamError('weird' as never);
    metrics.streamOpened();
    metrics.streamOpened();
    metrics.streamOpened();
    metrics.streamClosed();
    const s = await scrape(metrics);
    assert.equal(value(s, 'mcpgate_upstream_errors_total', { kind: 'timeout' }), 2);
    assert.equal(value(s, 'mcpgate_upstream_errors_total', { kind: 'refused' }), 1);
    assert.equal(value(s, 'mcpgate_upstream_errors_total', { kind: 'other' }), 1);
    assert.equal(value(s, 'mcpgate_open_streams'), 2);
  });

  it('reconfigure() replaces the allowlist names and key labels', async () => {
    const metrics = createMetrics(options);
    metrics.reconfigure({ knownTools: ['fresh'], keyLabels: ['carol'] });
    metrics.observe(toolCtx('echo'), 1001);
    metrics.observe(toolCtx('fresh'), 1001);
    metrics.observe(
      fakeContext({ decision: 'rate_limited', reason: 'ERR_RATE_LIMITED', principal: keyPrincipal('carol') }),
      1001,
    );
    const s = await scrape(metrics);
    assert.equal(value(s, 'mcpgate_tool_calls_total', { tool: 'other', decision: 'allow' }), 1);
    assert.equal(value(s, 'mcpgate_tool_calls_total', { tool: 'fresh', decision: 'allow' }), 1);
    assert.equal(value(s, 'mcpgate_rate_limited_total', { key: 'carol' }), 1);
  });

  it('process metrics carry the mcpgate_ prefix when enabled', async () => {
    const metrics = createMetrics({ ...options, processMetrics: true });
    const s = await scrape(metrics);
    assert.ok(
      s.some(
        (x) =>
          x.name === 'mcpgate_process_resident_memory_bytes' ||
          x.name === 'mcpgate_nodejs_heap_size_total_bytes',
      ),
    );
    assert.ok(s.every((x) => x.name.startsWith('mcpgate_')));
  });

  it('GET /metrics serves the text format (route)', async () => {
    const metrics = createMetrics(options);
    metrics.observe(toolCtx('echo'), 1001);
    const server = createServer(metricsRoute(metrics));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      const { samples } = parse(await res.text());
      assert.equal(value(samples, 'mcpgate_tool_calls_total', { tool: 'echo', decision: 'allow' }), 1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/**
 * The streaming scenarios: time to the first SSE event of a tools/call, and many idle GET streams
 * (memory per stream, and whether calls still perform while they are open).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BASE_HEADERS, openIdleStreams, sseTimings } from './client.ts';
import type { StreamTiming } from './client.ts';
import { ensureFileLimit } from './fd-limit.ts';
import { CALL, checkCall, compare, direct, keyEntry, pipelineConfig, via } from './measure.ts';
import type { Context, Measured, Scenario } from './measure.ts';
import { originStats, rssBytes } from './processes.ts';
import type { KeyMaterial } from './processes.ts';
import {
  checkRow,
  infoRow,
  kib,
  latencyRow,
  mib,
  percentile,
  ratioRow,
  throughputRow,
  us,
} from './report.ts';
import type { Row } from './report.ts';

export const sse: Scenario = {
  name: 'sse',
  title: 'SSE tools/call: time to the first event',
  notes:
    'The origin answers text/event-stream: a notifications/progress event at once, then the result ' +
    'after a delay. Sequential requests on one keep-alive connection; time from sending the request ' +
    'to the first body bytes.',
  async run(ctx) {
    const key = await ctx.key('bench');
    const gw = await ctx.gateway('sse', pipelineConfig(ctx, [keyEntry(key, ['*'])], '/dev/null'));
    const d = await direct(ctx);
    const g = await via(gw, 'mcpgate', key);
    // The bench's JS client warms up too; then rounds alternate between the two targets.
    const warm = Math.max(20, Math.round(ctx.sseSamples / 2));
    await sseTimings(d.url, d.headers, warm, ctx.sseDelayMs);
    await sseTimings(g.url, g.headers, warm, ctx.sseDelayMs);
    const dt: StreamTiming = { first: [], total: [] };
    const gt: StreamTiming = { first: [], total: [] };
    const perRound = Math.max(1, Math.ceil(ctx.sseSamples / ctx.rounds));
    for (let round = 0; round < ctx.rounds; round++) {
      for (const [t, into] of [
        [d, dt],
        [g, gt],
      ] as const) {
        const got = await sseTimings(t.url, t.headers, perRound, ctx.sseDelayMs);
        into.first.push(...got.first);
        into.total.push(...got.total);
      }
    }
    const p = (v: number[], q: number) => percentile(v, q);
    ctx.log(
      `  direct first event p50 ${us(p(dt.first, 50))}, mcpgate ${us(p(gt.first, 50))} (${perRound * ctx.rounds} samples each)`,
    );
    const delay = ctx.sseDelayMs * 1000;
    return [
      latencyRow('first event, median', ['direct', p(dt.first, 50)], ['mcpgate', p(gt.first, 50)]),
      latencyRow('first event, p99', ['direct', p(dt.first, 99)], ['mcpgate', p(gt.first, 99)]),
      checkRow(
        'first event before the result (streamed, not buffered)',
        `p99 ${us(p(gt.first, 99))}`,
        `< ${us(delay)} (origin delay)`,
        p(gt.first, 99) < delay,
      ),
      latencyRow('whole response, median', ['direct', p(dt.total, 50)], ['mcpgate', p(gt.total, 50)]),
    ];
  },
};

export const idleStreams: Scenario = {
  name: 'idle-streams',
  title: 'Many idle GET SSE streams',
  notes:
    'For each stream count, a fresh origin and two fresh gateways of the same config (so memory is not ' +
    'hidden in heap that earlier load already grew): one holds the streams, its twin holds none. Each ' +
    'stream is its own session (initialize, then GET /mcp) on its own socket. RSS is read from /proc ' +
    'after 200 streams were opened and closed (so the baseline holds the heap that this traffic grows ' +
    'by itself), then one second after opening the streams, before any other load; the origin holds ' +
    'the same streams upstream and is the memory baseline. tools/call is then measured through both ' +
    'gateways in alternating rounds (same origin, same time), with the default `upstream.connections`: ' +
    'GET streams have their own upstream pool, so open streams never take the connections requests ' +
    'need. The client, gateway and origin each need a descriptor per socket (the gateway two per ' +
    'stream): the bench checks the open-file limit first and raises it with prlimit when it is too low.',
  async run(ctx) {
    const most = Math.max(...ctx.streams);
    // Node raises each process's soft limit to its hard limit; the gateway needs two per stream.
    ctx.log(`  ${await ensureFileLimit(2 * most)}`);
    const key = await ctx.key('bench');
    const rows: Row[] = [];
    for (const n of ctx.streams) rows.push(...(await idleAt(ctx, key, n)));
    return rows;
  },
};

/** RSS per stream at `n` open streams, and tools/call with them open vs through an idle twin. */
async function idleAt(ctx: Context, key: KeyMaterial, n: number): Promise<Row[]> {
  const origin = await ctx.freshOrigin();
  const config = pipelineConfig(ctx, [keyEntry(key, ['*'], n * 2)], '/dev/null');
  const upstream = { url: `http://127.0.0.1:${origin.port}/mcp` };
  const gw = await ctx.gateway(`idle-streams-${n}`, { ...config, upstream });
  const twin = await ctx.gateway(`idle-streams-${n}-twin`, { ...config, upstream });
  try {
    const g = await via(gw, `mcpgate, ${n} streams`, key);
    const t = await via(twin, 'mcpgate, no streams', key);
    await checkCall(g);
    await checkCall(t);
    const headers = { ...BASE_HEADERS, authorization: `Bearer ${key.key}` };
    // The baseline is read after the same traffic (streams opened and closed), so it already holds
    // the heap that opening streams grows by itself; the growth after it is what held streams take.
    (await openIdleStreams(g.url, headers, Math.min(n, WARM_STREAMS))).close();
    await sleep(1000);
    const gwRss0 = rssBytes(gw.pid);
    const originRss0 = rssBytes(origin.pid);
    const started = performance.now();
    const streams = await openIdleStreams(g.url, headers, n);
    let without1: Measured, with1: Measured, without32: Measured, with32: Measured;
    let gwRss1: number, originRss1: number, upstreamStreams: number;
    try {
      const openMs = performance.now() - started;
      await sleep(1000);
      gwRss1 = rssBytes(gw.pid);
      originRss1 = rssBytes(origin.pid);
      upstreamStreams = (await originStats(origin)).streams;
      ctx.log(
        `  opened ${n} streams in ${Math.round(openMs)} ms; origin holds ${upstreamStreams}; ` +
          `mcpgate RSS ${mib(gwRss0)} -> ${mib(gwRss1)}, origin ${mib(originRss0)} -> ${mib(originRss1)}`,
      );
      [without1, with1] = (await compare(ctx, [t, g], CALL, 1)) as [Measured, Measured];
      [without32, with32] = (await compare(ctx, [t, g], CALL, 32)) as [Measured, Measured];
    } finally {
      streams.close();
    }
    const perGw = (gwRss1 - gwRss0) / n;
    const perOrigin = (originRss1 - originRss0) / n;
    const label = `${n} streams`;
    return [
      checkRow(
        `GET streams open through mcpgate (${n})`,
        `${n} opened, ${upstreamStreams} at the origin`,
        `${n}`,
        upstreamStreams >= n,
      ),
      {
        ...infoRow(
          `RSS per idle stream (${n})`,
          `origin ${kib(perOrigin)}`,
          `mcpgate ${kib(perGw)}`,
          `${(perGw / perOrigin).toFixed(2)}×`,
        ),
        target: `≤ ${kib(MAX_RSS_PER_STREAM)}`,
        status: perGw <= MAX_RSS_PER_STREAM ? 'PASS' : 'MISS',
      },
      infoRow(
        `mcpgate RSS (${n})`,
        `no streams ${mib(gwRss0)}`,
        `${label} ${mib(gwRss1)}`,
        `+${mib(gwRss1 - gwRss0)}`,
      ),
      latencyRow(`tools/call median, 1 conn (${n})`, ['no streams', without1.p50], [label, with1.p50]),
      ratioRow(
        `tools/call p99, 1 conn (${n})`,
        ['no streams', without1.p99],
        [label, with1.p99],
        MAX_P99_RATIO,
      ),
      latencyRow(`tools/call median, 32 conns (${n})`, ['no streams', without32.p50], [label, with32.p50]),
      ratioRow(
        `tools/call p99, 32 conns (${n})`,
        ['no streams', without32.p99],
        [label, with32.p99],
        MAX_P99_RATIO,
      ),
      throughputRow(
        `tools/call throughput, 32 conns (${n})`,
        ['no streams', without32.rps],
        [label, with32.rps],
      ),
    ];
  } finally {
    // Free the sockets and memory before the next count.
    for (const proc of [twin, gw, origin]) await proc.stop();
  }
}

/** Streams opened and closed before the memory baseline is read. */
const WARM_STREAMS = 200;
/** Issue 14: RSS per idle stream, and tools/call p99 with the streams open over without. */
const MAX_RSS_PER_STREAM = 40 * 1024;
const MAX_P99_RATIO = 1.5;

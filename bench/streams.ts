/**
 * The streaming scenarios: time to the first SSE event of a tools/call, and many idle GET streams
 * (memory per stream, and whether calls still perform while they are open).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BASE_HEADERS, openIdleStreams, sseTimings } from './client.ts';
import type { StreamTiming } from './client.ts';
import { CALL, checkCall, compare, direct, keyEntry, pipelineConfig, via } from './measure.ts';
import type { Measured, Scenario } from './measure.ts';
import { originStats, rssBytes } from './processes.ts';
import { checkRow, infoRow, kib, latencyRow, mib, percentile, throughputRow, us } from './report.ts';

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
    'A fresh origin and gateway, so memory is not hidden in heap that earlier load already grew. ' +
    'Each stream is its own session (initialize, then GET /mcp) on its own socket. RSS is read from ' +
    '/proc before opening the streams and one second after; the origin holds the same streams ' +
    'upstream and is the memory baseline. tools/call is then measured with the streams open, and ' +
    'again after they are closed, with the default `upstream.connections`: GET streams have their own ' +
    'upstream pool, so open streams never take the connections requests need.',
  async run(ctx) {
    const n = ctx.streams;
    const key = await ctx.key('bench');
    const origin = await ctx.freshOrigin();
    const originUrl = `http://127.0.0.1:${origin.port}/mcp`;
    const config = pipelineConfig(ctx, [keyEntry(key, ['*'], n * 2)], '/dev/null');
    const gw = await ctx.gateway('idle-streams', {
      ...config,
      upstream: { url: originUrl },
    });
    const g = await via(gw, 'mcpgate', key);
    await checkCall(g);
    await sleep(500);
    const gwRss0 = rssBytes(gw.pid);
    const originRss0 = rssBytes(origin.pid);
    const started = performance.now();
    const streams = await openIdleStreams(g.url, { ...BASE_HEADERS, authorization: `Bearer ${key.key}` }, n);
    let with1: Measured, with32: Measured, gwRss1: number, originRss1: number, upstreamStreams: number;
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
      [with1] = (await compare(ctx, [{ ...g, label: `mcpgate, ${n} streams` }], CALL, 1)) as [Measured];
      [with32] = (await compare(ctx, [{ ...g, label: `mcpgate, ${n} streams` }], CALL, 32)) as [Measured];
    } finally {
      streams.close();
    }
    await sleep(1000);
    const [without1] = (await compare(ctx, [g], CALL, 1)) as [Measured];
    const [without32] = (await compare(ctx, [g], CALL, 32)) as [Measured];
    const perGw = (gwRss1 - gwRss0) / n;
    const perOrigin = (originRss1 - originRss0) / n;
    return [
      checkRow(
        'GET streams open through mcpgate',
        `${n} opened, ${upstreamStreams} at the origin`,
        `${n}`,
        upstreamStreams >= n,
      ),
      infoRow(
        'RSS per idle stream',
        `origin ${kib(perOrigin)}`,
        `mcpgate ${kib(perGw)}`,
        `${(perGw / perOrigin).toFixed(2)}×`,
      ),
      infoRow(
        'mcpgate RSS',
        `no streams ${mib(gwRss0)}`,
        `${n} streams ${mib(gwRss1)}`,
        `+${mib(gwRss1 - gwRss0)}`,
      ),
      latencyRow('tools/call median, 1 conn', ['no streams', without1.p50], [`${n} streams`, with1.p50]),
      latencyRow('tools/call p99, 1 conn', ['no streams', without1.p99], [`${n} streams`, with1.p99]),
      throughputRow(
        'tools/call throughput, 32 conns',
        ['no streams', without32.rps],
        [`${n} streams`, with32.rps],
      ),
    ];
  },
};

/**
 * Fairness under abuse: while one key floods the gateway with the most expensive bodies the limits
 * allow (4 MiB, the slowest shapes bench/parse-fuzz.ts finds, on 8 connections at once, with the
 * default rate limit of 60 burst and 1/s), another key's `ping` latency is measured, and compared
 * with the same key's pings with no flood, in the same run.
 *
 *   node bench/abuse.ts [--seconds 20] [--flooders 8] [--keep]
 *
 * Processes: the bench origin, `mcpgate serve`, and this script (the flood and the pings). All
 * share the machine's cores, so the figure includes the flood's own cost to the box.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { keygen, killAll, startGateway, startOrigin } from './processes.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    flooders: { type: 'string', default: '8' },
    keep: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(values.seconds);
const FLOODERS = Number(values.flooders);
const BIN = new URL('../bin/mcpgate.js', import.meta.url).pathname;
const MAX = 4 * 1024 * 1024;

/** The expensive bodies: each is a valid tools/call of at most 4 MiB. */
function expensiveBodies(): Buffer[] {
  const pre = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":';
  const post = '}}}';
  const room = MAX - pre.length - post.length - 16;
  const keys: string[] = [];
  for (let i = 0; i < 49_000; i++) keys.push(`"${'k'.repeat(70)}${i}":0`);
  // Objects whose keys are spelled with a \u escape and hold a backslash, where a reader reads them
  // (params._meta): JSON.parse builds them, the key check walks them and the splice re-spells them.
  const meta = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"a":[';
  const unit = `{"${'a'.repeat(104)}\\u0061":1,"${'b'.repeat(104)}\\\\":2},`;
  const units = unit.repeat(Math.floor((MAX - meta.length - 64) / unit.length));
  return [
    Buffer.from(`${meta}${units}0]},"arguments":{}}}`),
    Buffer.from(`${pre}"${'\\"'.repeat(Math.floor(room / 2) - 2)}"${post}`),
    Buffer.from(`${pre}"${'\\u00e9'.repeat(Math.floor(room / 6) - 2)}"${post}`),
    Buffer.from(`${pre}{${keys.join(',')}}${post}`.slice(0, MAX)),
    Buffer.from(`${pre}[${'{},'.repeat(99_000)}{}]${post}`),
  ].map((b) => (b.length <= MAX ? b : b.subarray(0, MAX)));
}

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function pings(url: string, key: string, ms: number): Promise<number[]> {
  const agent = new Agent({ connections: 1 });
  const out: number[] = [];
  const end = performance.now() + ms;
  let id = 0;
  while (performance.now() < end) {
    const t0 = performance.now();
    const res = await request(url, {
      method: 'POST',
      dispatcher: agent,
      headers: { ...HEADERS, authorization: `Bearer ${key}` },
      body: `{"jsonrpc":"2.0","id":${++id},"method":"ping"}`,
    });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`ping answered ${res.statusCode}`);
    out.push(performance.now() - t0);
    await sleep(20);
  }
  await agent.close();
  return out.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgate-abuse-'));
  try {
    const origin = await startOrigin(dir, 50);
    const flood = await keygen(BIN, 'flood');
    const victim = await keygen(BIN, 'victim');
    const gateway = await startGateway(BIN, dir, 'gateway', {
      upstream: { url: `http://127.0.0.1:${origin.port}/mcp` },
      audit: { output: join(dir, 'audit.log') },
      keys: [
        { label: 'flood', hash: flood.hash, allow: ['*'] },
        // The victim's own bucket never empties: its pings measure the gateway, not its rate limit.
        {
          label: 'victim',
          hash: victim.hash,
          allow: ['*'],
          rate_limit: { capacity: 1e6, refill_per_second: 1e6 },
        },
      ],
    });
    const url = `http://127.0.0.1:${gateway.port}/mcp`;
    await pings(url, victim.key, 1000); // warm-up
    const calm = await pings(url, victim.key, 5000);

    const bodies = expensiveBodies();
    const statuses = new Map<number, number>();
    let stop = false;
    const floodAgent = new Agent({ connections: FLOODERS, pipelining: 0 });
    const flooders = Array.from({ length: FLOODERS }, async (_, i) => {
      for (let n = i; !stop; n++) {
        try {
          const res = await request(url, {
            method: 'POST',
            dispatcher: floodAgent,
            headers: { ...HEADERS, authorization: `Bearer ${flood.key}` },
            body: bodies[n % bodies.length],
          });
          await res.body.text();
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        } catch {
          statuses.set(0, (statuses.get(0) ?? 0) + 1);
        }
      }
    });
    const load1 = loadavg()[0] as number;
    const abused = await pings(url, victim.key, SECONDS * 1000);
    stop = true;
    await Promise.all(flooders);
    await floodAgent.close();
    const fmt = (xs: number[]) =>
      `median ${quantile(xs, 0.5).toFixed(2)} ms, p90 ${quantile(xs, 0.9).toFixed(2)} ms, p99 ${quantile(xs, 0.99).toFixed(2)} ms, max ${(xs[xs.length - 1] ?? NaN).toFixed(1)} ms (${xs.length} pings)`;
    console.log(
      `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load average at flood start ${load1.toFixed(2)}, at end ${loadavg()[0]?.toFixed(2)}`,
    );
    console.log(
      `flood bodies: ${bodies.map((b) => `${(b.length / 1048576).toFixed(2)} MiB`).join(', ')} on ${FLOODERS} connections`,
    );
    console.log(
      `flood answers: ${[...statuses].map(([s, n]) => `${s === 0 ? 'error' : s}×${n}`).join(', ')}`,
    );
    console.log(`victim ping, no flood:   ${fmt(calm)}`);
    console.log(`victim ping, under flood: ${fmt(abused)}`);
    console.log(
      `median under flood / median calm: ${(quantile(abused, 0.5) / quantile(calm, 0.5)).toFixed(2)}; target median < 50 ms: ${quantile(abused, 0.5) < 50 ? 'met' : 'MISS'}`,
    );
    await gateway.stop();
    await origin.stop();
  } finally {
    killAll();
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

await main();

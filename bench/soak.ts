/**
 * Soak: a bounded mix at the gateway's capacity for 60 s (then it stops by itself), loopback only:
 * allowed calls, denied calls, garbage bodies, client aborts mid-stream, large lists in tiny chunks
 * (the origin writes 64-byte chunks), GET streams opened and dropped, and an upstream that resets
 * the connection. Reports the gateway's RSS before, at its peak and after (after a pause), whether
 * it crashed, and the audit lines against the requests this script sent.
 *
 *   node bench/soak.ts [--seconds 60] [--workers 24] [--settle 30] [--keep]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { keygen, killAll, rssBytes, startGateway, startOrigin } from './processes.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    workers: { type: 'string', default: '24' },
    settle: { type: 'string', default: '30' },
    keep: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(values.seconds);
const WORKERS = Number(values.workers);
const BIN = new URL('../bin/mcpgate.js', import.meta.url).pathname;
const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

type Kind = 'allowed' | 'denied' | 'garbage' | 'abort' | 'tiny-list' | 'get-drop' | 'reset';
const MIX: Kind[] = [
  'allowed',
  'allowed',
  'allowed',
  'denied',
  'garbage',
  'abort',
  'tiny-list',
  'get-drop',
  'reset',
];

const call = (id: number, name: string) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: { delay_ms: 200 } },
  });

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcpgate-soak-'));
  const auditPath = join(dir, 'audit.log');
  try {
    const origin = await startOrigin(dir, 1000);
    const key = await keygen(BIN, 'soak');
    const gateway = await startGateway(BIN, dir, 'gateway', {
      upstream: { url: `http://127.0.0.1:${origin.port}/mcp` },
      audit: { output: auditPath },
      // A bucket the mix never empties: the soak is about memory and truth, not rate limits.
      keys: [
        {
          label: 'soak',
          hash: key.hash,
          allow: ['tool_*', 'stream', 'reset'],
          rate_limit: { capacity: 1e9, refill_per_second: 1e9 },
        },
      ],
    });
    const url = `http://127.0.0.1:${gateway.port}/mcp`;
    const headers = { ...HEADERS, authorization: `Bearer ${key.key}` };
    const agent = new Agent({ connections: WORKERS * 2 });
    const counts = new Map<string, number>();
    const count = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
    // startGateway's readiness probe (a POST without a key) is the first request the gateway audits.
    let sent = 1;

    async function one(kind: Kind, id: number): Promise<void> {
      sent++;
      const ac = new AbortController();
      try {
        if (kind === 'get-drop') {
          const res = await request(url, { method: 'GET', headers, dispatcher: agent, signal: ac.signal });
          await sleep(20);
          ac.abort();
          await res.body.text().catch(() => {});
          count(`${kind} ${res.statusCode}`);
          return;
        }
        const body =
          kind === 'allowed'
            ? call(id, 'tool_1')
            : kind === 'denied'
              ? call(id, 'forbidden')
              : kind === 'garbage'
                ? '{"jsonrpc":"2.0","id":' + '['.repeat(100)
                : kind === 'abort'
                  ? call(id, 'stream')
                  : kind === 'reset'
                    ? call(id, 'reset')
                    : JSON.stringify({
                        jsonrpc: '2.0',
                        id,
                        method: 'tools/list',
                        params: { cursor: 'tiny-chunks' },
                      });
        const res = await request(url, {
          method: 'POST',
          headers,
          body,
          dispatcher: agent,
          signal: ac.signal,
        });
        if (kind === 'abort') {
          // Read the first event, then leave while the upstream is still working.
          for await (const _chunk of res.body) break;
          ac.abort();
          count(`${kind} ${res.statusCode}`);
          return;
        }
        await res.body.text();
        count(`${kind} ${res.statusCode}`);
      } catch (err) {
        count(`${kind} ${ac.signal.aborted ? 'aborted' : (err as Error).name}`);
      }
    }

    await one('allowed', 0);
    await sleep(500);
    const rssBefore = rssBytes(gateway.pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssBytes(gateway.pid));
    }, 100);
    const load0 = loadavg()[0] as number;
    const end = performance.now() + SECONDS * 1000;
    let next = 1;
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, w) => {
        for (let i = w; performance.now() < end; i += WORKERS) await one(MIX[i % MIX.length] as Kind, next++);
      }),
    );
    const loadEnd = loadavg()[0] as number;
    await agent.close();
    await sleep(Number(values.settle) * 1000);
    clearInterval(sampler);
    const alive = gateway.child.exitCode === null;
    const rssAfter = alive ? rssBytes(gateway.pid) : NaN;
    await gateway.stop();
    await origin.stop();
    const lines = readFileSync(auditPath, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    const parsed = lines.map((l) => JSON.parse(l) as { decision: string; reason?: string });
    const decisions = new Map<string, number>();
    for (const l of parsed)
      decisions.set(
        `${l.decision}${l.reason ? `/${l.reason}` : ''}`,
        (decisions.get(`${l.decision}${l.reason ? `/${l.reason}` : ''}`) ?? 0) + 1,
      );
    const mib = (n: number) => (n / 1048576).toFixed(1);
    console.log(
      `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load average ${load0.toFixed(2)} at start, ${loadEnd.toFixed(2)} at end`,
    );
    console.log(`${SECONDS} s, ${WORKERS} workers, mix ${MIX.join(',')}`);
    console.log(
      `requests sent: ${sent}; audit lines: ${lines.length} (${lines.length === sent ? 'equal' : 'MISMATCH'})`,
    );
    console.log(
      `gateway alive at the end: ${alive ? 'yes' : 'NO (crashed)'}; RSS after a ${values.settle} s pause`,
    );
    console.log(
      `RSS before ${mib(rssBefore)} MiB, peak ${mib(rssPeak)} MiB, after ${mib(rssAfter)} MiB (after/before ${(rssAfter / rssBefore).toFixed(2)}; target ≤ 1.20: ${rssAfter <= rssBefore * 1.2 ? 'met' : 'MISS'})`,
    );
    console.log(
      `client outcomes: ${[...counts]
        .sort()
        .map(([k, n]) => `${k}×${n}`)
        .join(', ')}`,
    );
    console.log(
      `audit decisions: ${[...decisions]
        .sort()
        .map(([k, n]) => `${k}×${n}`)
        .join(', ')}`,
    );
  } finally {
    killAll();
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

await main();

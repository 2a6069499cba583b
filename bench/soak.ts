/**
 * Soak: a bounded mix at the gateway's capacity for 60 s (then it stops by itself), loopback only:
 * allowed calls, denied calls, garbage bodies, client aborts mid-stream, large lists in tiny chunks
 * (the origin writes 64-byte chunks), GET streams opened and dropped, and an upstream that resets
 * the connection. Reports whether the gateway crashed, the audit lines against the requests this
 * script sent, and its memory: RSS cold (after one call), before the soak (after a warm-up with the
 * same mix and a pause), at its peak and after a pause, split into anonymous and file-backed, with
 * the V8 heap used and committed read from the gateway's `--trace-gc` lines (from outside: no
 * endpoint). `--snapshots` adds heap snapshots before and after and what grew between them;
 * `--node-arg` passes flags to the gateway's node (e.g. `--max-semi-space-size=8`).
 *
 *   node bench/soak.ts [--seconds 60] [--workers 24] [--warmup 10] [--settle 30] [--snapshots]
 *     [--node-arg=FLAG ...] [--keep]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { keygen, killAll, rssBytes, startGateway, startOrigin } from './processes.ts';
import { countHeap, growth, snapshotArgs, takeSnapshot } from './heap-diff.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    workers: { type: 'string', default: '24' },
    settle: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '10' },
    keep: { type: 'boolean', default: false },
    // Extra V8/Node flags for the gateway (repeatable), e.g. --node-arg=--max-semi-space-size=4
    'node-arg': { type: 'string', multiple: true, default: [] },
    // Heap snapshots before the mix and after the pause, and what grew between them (costs memory
    // and time: the RSS figures of such a run are not the soak's).
    snapshots: { type: 'boolean', default: false },
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
    const gateway = await startGateway(
      BIN,
      dir,
      'gateway',
      {
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
      },
      // --trace-gc: V8 logs the heap after each collection, so the report can say how much of the
      // RSS after the pause is live JavaScript heap (read from outside, no endpoint needed).
      ['--trace-gc', ...(values.snapshots ? snapshotArgs(dir) : []), ...(values['node-arg'] ?? [])],
    );
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
                        params: { _meta: { chunks: 'tiny' } },
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

    const mix = async (seconds: number) => {
      const end = performance.now() + seconds * 1000;
      await Promise.all(
        Array.from({ length: WORKERS }, async (_, w) => {
          for (let i = w; performance.now() < end; i += WORKERS)
            await one(MIX[i % MIX.length] as Kind, next++);
        }),
      );
    };
    let next = 1;
    await one('allowed', 0);
    await sleep(500);
    const rssCold = rssBytes(gateway.pid);
    // A warm-up with the same mix, then a pause: "before" is a gateway that has compiled its hot
    // code and grown its pools, so after/before measures what the soak itself left behind.
    const WARMUP = Number(values.warmup);
    if (WARMUP > 0) {
      await mix(WARMUP);
      await sleep(5000);
    }
    const snapBefore = values.snapshots ? await takeSnapshot(gateway.pid, dir) : undefined;
    const rssBefore = rssBytes(gateway.pid);
    const memBefore = memoryOf(gateway.pid);
    const gcBefore = lastGc(readFileSync(gateway.log, 'utf8'));
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssBytes(gateway.pid));
    }, 100);
    const load0 = loadavg()[0] as number;
    await mix(SECONDS);
    const loadEnd = loadavg()[0] as number;
    await agent.close();
    // RSS during the pause, to see whether it comes down by itself and when.
    const settleMs = Number(values.settle) * 1000;
    const during: string[] = [];
    let slept = 0;
    for (const at of [1000, 5000, 10_000, settleMs]) {
      if (at > settleMs || at <= slept) continue;
      await sleep(at - slept);
      slept = at;
      if (gateway.child.exitCode !== null) break;
      during.push(`${at / 1000} s ${(rssBytes(gateway.pid) / 1048576).toFixed(1)}`);
    }
    clearInterval(sampler);
    const alive = gateway.child.exitCode === null;
    const rssAfter = alive ? rssBytes(gateway.pid) : NaN;
    const memAfter = alive ? memoryOf(gateway.pid) : undefined;
    const gc = lastGc(readFileSync(gateway.log, 'utf8'));
    if (snapBefore !== undefined && alive) {
      const snapAfter = await takeSnapshot(gateway.pid, dir);
      const a = countHeap(snapBefore);
      const b = countHeap(snapAfter);
      const liveGc = lastGc(readFileSync(gateway.log, 'utf8'));
      console.log(
        `heap snapshots: live ${(a.totalBytes / 1048576).toFixed(1)} MiB before, ${(b.totalBytes / 1048576).toFixed(1)} MiB after (V8 after the snapshot's collection: ${liveGc?.used} MB used of ${liveGc?.committed} MB)`,
      );
      for (const line of growth(a, b)) console.log(`  grew: ${line}`);
    }
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
      `RSS cold (after one call) ${mib(rssCold)} MiB${WARMUP > 0 ? `, after a ${WARMUP} s warm-up and a 5 s pause` : ''}: before ${mib(rssBefore)} MiB, peak ${mib(rssPeak)} MiB, after ${mib(rssAfter)} MiB (after/before ${(rssAfter / rssBefore).toFixed(2)}; target ≤ 1.20: ${rssAfter <= rssBefore * 1.2 ? 'met' : 'MISS'}; after/cold ${(rssAfter / rssCold).toFixed(2)})`,
    );
    console.log(`RSS during the pause: ${during.join(', ')} MiB`);
    if (memAfter !== undefined)
      console.log(
        `anonymous / file-backed RSS (/proc/PID/status): before ${mib(memBefore.anon)} / ${mib(memBefore.file)} MiB, after ${mib(memAfter.anon)} / ${mib(memAfter.file)} MiB`,
      );
    if (gcBefore !== undefined)
      console.log(
        `V8 heap before the mix (${gcBefore.kind} at ${(gcBefore.atMs / 1000).toFixed(1)} s): ${gcBefore.used} MB used of ${gcBefore.committed} MB committed`,
      );
    console.log(
      gc === undefined
        ? 'V8 heap: no GC line in the gateway log'
        : `V8 heap after its last collection (${gc.kind} at ${(gc.atMs / 1000).toFixed(1)} s): ${gc.used} MB used of ${gc.committed} MB committed; heap used at most ${gc.maxUsed} MB, committed at most ${gc.maxCommitted} MB during the run`,
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

/** RssAnon and RssFile of a process. */
function memoryOf(pid: number): { anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile') };
}

/** The last `--trace-gc` line: `... 61234 ms: Mark-Compact 45.1 (70.2) -> 30.4 (68.0) MB, ...`. */
function lastGc(
  log: string,
):
  | { kind: string; atMs: number; used: number; committed: number; maxUsed: number; maxCommitted: number }
  | undefined {
  const re = /\s(\d+) ms: ([A-Za-z-]+(?: \([a-z ]+\))?) ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/g;
  let last: RegExpExecArray | undefined;
  let maxUsed = 0;
  let maxCommitted = 0;
  for (let m = re.exec(log); m !== null; m = re.exec(log)) {
    last = m;
    maxUsed = Math.max(maxUsed, Number(m[3]));
    maxCommitted = Math.max(maxCommitted, Number(m[4]), Number(m[6]));
  }
  if (last === undefined) return undefined;
  return {
    kind: last[2] as string,
    atMs: Number(last[1]),
    used: Number(last[5]),
    committed: Number(last[6]),
    maxUsed,
    maxCommitted,
  };
}

await main();

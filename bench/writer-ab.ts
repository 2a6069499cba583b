/**
 * The audit writer against another build's, in one process, rounds interleaved: per request (one
 * pipeline-sized audit line, 8 per event-loop turn, flushed at the end of each round), the wall
 * time and the process's CPU time (user + system, the threadpool's writes included). Only the
 * ratio means something on a shared machine.
 *
 *   node bench/writer-ab.ts --baseline ../start [--output stdout|stderr|PATH] [--rounds 9] | cat >/dev/null
 *
 * `--baseline` is the root of another checkout (a `git worktree add --detach`); with `--output
 * stdout`, pipe the output somewhere (a pipe is what is measured). Results go to stderr.
 */
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createAuditWriter } from '../src/audit/writer.ts';
import type { AuditWriter } from '../src/audit/writer.ts';

const { values } = parseArgs({
  options: {
    baseline: { type: 'string' },
    output: { type: 'string', default: join(tmpdir(), `writer-ab-${process.pid}.log`) },
    rounds: { type: 'string', default: '9' },
    batch: { type: 'string', default: '20000' },
  },
});
if (values.baseline === undefined) throw new TypeError('--baseline <checkout root> is required');
const output = values.output;
const rounds = Number(values.rounds);
const batch = Number(values.batch);
const baseline = (await import(
  pathToFileURL(join(resolve(values.baseline), 'src/audit/writer.ts')).href
)) as { createAuditWriter: typeof createAuditWriter };
const writers: Record<string, AuditWriter> = {
  baseline: baseline.createAuditWriter({ output }),
  this: createAuditWriter({ output }),
};
const line = {
  time: new Date().toISOString(),
  request_id: '3f2a9c1b-aaaa-4bbb-8ccc-1234567890ab',
  key: 'bench',
  key_id: 'k1a2b3c4',
  client_ip: '127.0.0.1',
  http_method: 'POST',
  rpc_method: 'tools/call',
  rpc_id: 7,
  tool: 'tool_000_search_issues',
  decision: 'allow',
  status: 200,
  latency_ms: 1.234,
  upstream_ms: 0.8,
  bytes_in: 110,
  bytes_out: 98,
  session: 's-3f2a9c1b',
  protocol_version: '2025-06-18',
  aborted: false,
  user_agent: 'wrk',
};
const turn = () => new Promise((r) => setImmediate(r));
const results: Record<string, { wall: number[]; cpu: number[] }> = {
  baseline: { wall: [], cpu: [] },
  this: { wall: [], cpu: [] },
};
for (let round = 0; round < rounds; round++) {
  for (const name of round % 2 === 0 ? ['baseline', 'this'] : ['this', 'baseline']) {
    const writer = writers[name]!;
    await writer.flush();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) {
      writer.write(line);
      if (i % 8 === 7) await turn();
    }
    await writer.flush();
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    results[name]!.wall.push((wall * 1000) / batch);
    results[name]!.cpu.push((cpu.user + cpu.system) / batch);
  }
}
await Promise.all(Object.values(writers).map((w) => w.close()));
if (output !== 'stdout' && output !== 'stderr' && output.includes('writer-ab-'))
  rmSync(output, { force: true });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const [b, t] = [results.baseline!, results.this!];
process.stderr.write(
  [
    `output ${output}, ${rounds} rounds × ${batch}, load average ${loadavg()[0]!.toFixed(2)}`,
    `baseline  wall ${median(b.wall).toFixed(2)} µs/req  cpu ${median(b.cpu).toFixed(2)} µs/req`,
    `this      wall ${median(t.wall).toFixed(2)} µs/req  cpu ${median(t.cpu).toFixed(2)} µs/req`,
    `this/baseline  wall ${(median(t.wall) / median(b.wall)).toFixed(2)}  cpu ${(median(t.cpu) / median(b.cpu)).toFixed(2)}`,
    '',
  ].join('\n'),
);

/**
 * Micro-benchmark of reading a request body (issue 14), per request, in one process: the body of
 * the pipeline bench's tools/call, pushed into a real IncomingMessage the way Node's HTTP parser
 * pushes it (one chunk and the end, in the same turn as the 'request' event), read by
 * `createReadBody`, and released when the response closes. Not part of the tests.
 *
 *   node --max-semi-space-size=64 --min-semi-space-size=64 bench/body-micro.ts [--ops 100000]
 *     [--rounds 7] [--bytes 120] [--against /path/to/other/checkout]
 *
 * Each line is the median over alternating rounds of the CPU time (user + system) per read and
 * the bytes allocated per read (heap and off-heap). With `--against`, the other checkout's module
 * runs in the same rounds, interleaved: an A/B in one process, under one load.
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type * as ReadBodyModule from '../src/pipeline/read-body.ts';
import type * as BodyBufferModule from '../src/proxy/body-buffer.ts';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '7' },
    bytes: { type: 'string', default: '120' },
    against: { type: 'string' },
  },
});
const OPS = Number(values.ops);
const ROUNDS = Number(values.rounds);
const chunk = Buffer.alloc(Number(values.bytes), 0x61);
const length = String(chunk.length);
const socket = new Socket();

interface Subject {
  readonly name: string;
  readonly op: () => Promise<unknown>;
}

async function load(name: string, root: string): Promise<Subject> {
  const at = (file: string) => pathToFileURL(resolve(root, 'src', file)).href;
  const { createReadBody } = (await import(at('pipeline/read-body.ts'))) as typeof ReadBodyModule;
  const { BufferBudget } = (await import(at('proxy/body-buffer.ts'))) as typeof BodyBufferModule;
  const budget = new BufferBudget(64 * 1024 * 1024);
  const readBody = createReadBody(4 * 1024 * 1024, budget);
  return {
    name,
    async op() {
      const req = new IncomingMessage(socket);
      req.headers = { 'content-length': length };
      const res = new ServerResponse(req);
      const reading = readBody(req, res);
      // As the parser does, in the same turn: the body, then the end of the message.
      req.push(chunk);
      req.complete = true;
      req.push(null);
      const bytes = await reading;
      if (bytes.length !== chunk.length) throw new Error('short body');
      res.emit('close');
      if (budget.used !== 0) throw new Error('reservation kept');
    },
  };
}

async function time(op: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5_000; i++) await op();
  const cpu = process.cpuUsage();
  for (let i = 0; i < OPS; i++) await op();
  const used = process.cpuUsage(cpu);
  return ((used.user + used.system) * 1000) / OPS;
}

async function allocated(op: () => Promise<unknown>): Promise<number> {
  const BATCH = 2_000;
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = process.memoryUsage();
    for (let i = 0; i < BATCH; i++) await op();
    const after = process.memoryUsage();
    const bytes = after.heapUsed - before.heapUsed + (after.external - before.external);
    if (bytes >= 0) return bytes / BATCH;
  }
  return NaN;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const avg = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

const subjects = [await load('this', resolve(import.meta.dirname, '..'))];
if (values.against !== undefined) subjects.push(await load('against', values.against));
console.log(
  `node ${process.version}, ${OPS} reads of ${chunk.length} B x ${ROUNDS} rounds, load average ${avg()}`,
);
const results = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? subjects : [...subjects].reverse();
  for (const s of order) results.get(s.name)!.push(await time(s.op));
}
const parts: string[] = [];
for (const s of subjects)
  parts.push(
    `${s.name} ${median(results.get(s.name)!).toFixed(0)} ns ${(await allocated(s.op)).toFixed(0)} B`,
  );
const ratio =
  subjects.length === 2
    ? `  this/against ${(median(results.get('this')!) / median(results.get('against')!)).toFixed(2)}`
    : '';
console.log(`read a one-chunk body: ${parts.join('  ')}${ratio}`);
console.log(`load average after: ${avg()}`);

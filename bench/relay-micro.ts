/**
 * Micro-benchmark of the relay (src/proxy/relay.ts) for the pipeline's answer: a small JSON
 * tools/call response, one chunk with its Content-Length, matched by the exchange's rewrite, written
 * to a real ServerResponse on a socket that drops what it is given (no syscall: what is timed is the
 * relay and Node's response writing). Not part of the tests.
 *
 *   node bench/relay-micro.ts [--ops 50000] [--rounds 7] [--against /path/to/other/checkout]
 *
 * Each line is the median over alternating rounds of CPU time (user + system) per response, the
 * median wall time per response over batches taking turns (steadier on a shared machine), and the
 * bytes one response allocates (heap and Buffers); with `--against`, that checkout's relay and
 * rewrite run in the same rounds, interleaved. The "floor" line is bench/floor-proxy.ts's way of
 * answering (setHeader, then end with the body) on the same socket, in the same rounds: what is
 * above it is the gateway's own work on the response.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setImmediate as turn } from 'node:timers/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { compileGrants } from '../src/policy/grants.ts';
import type * as RelayModule from '../src/proxy/relay.ts';
import type * as MatchModule from '../src/integrity/match.ts';
import type * as HeadModule from '../src/proxy/response-headers.ts';
import type * as KeepaliveModule from '../src/proxy/keepalive.ts';
import type * as TagModule from '../src/integrity/request-tag.ts';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '7' },
    against: { type: 'string' },
  },
});
const OPS = Number(values.ops);
const ROUNDS = Number(values.rounds);
const RESULT = '{"content":[{"type":"text","text":"ok"}]}';
const filters = { grants: compileGrants({ allow: ['*'], prompts: [], resources: [] }), tasks: undefined };

/** A socket that takes every write at once and keeps nothing. */
function sinkSocket(): Socket {
  const sink = new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
    writev(_chunks, callback) {
      callback();
    },
  });
  return sink as unknown as Socket;
}

const controller = {
  rawHeaders: null as unknown,
  aborted: false,
  paused: false,
  abort() {},
  pause() {},
  resume() {},
} as unknown as Dispatcher.DispatchController;

const REQUEST_ID = '3078f0a3-be11-4e91-ae8b-1817fa3e091f';
/** What the pipeline's hooks do per response (pipeline/exchange.ts): the request id, no CORS. */
const hooks = {
  onStart(_status: number, headers: Record<string, string | string[]>) {
    headers['x-request-id'] = REQUEST_ID;
  },
  onDone() {},
  onBytes() {},
};

async function load(root: string) {
  const at = (file: string) => pathToFileURL(resolve(root, 'src', file)).href;
  const relayMod = (await import(at('proxy/relay.ts'))) as typeof RelayModule;
  const matchMod = (await import(at('integrity/match.ts'))) as typeof MatchModule;
  const headMod = (await import(at('proxy/response-headers.ts'))) as typeof HeadModule;
  const keepaliveMod = (await import(at('proxy/keepalive.ts'))) as typeof KeepaliveModule;
  const tagMod = (await import(at('integrity/request-tag.ts'))) as typeof TagModule;
  const tagger = tagMod.createRequestTagger(Buffer.alloc(32, 3));
  const config = {
    keepalive: new keepaliveMod.KeepaliveWheel(15_000),
    head: headMod.createResponseHead({ pass: [], warn() {}, now: () => 0 }),
  };
  const tag = tagger.tag('k', 42, 'none');
  const entry = { clientId: 42, plan: 'none' as const, pending: undefined };
  const tags = new Map([[tag, entry]]);
  const body = Buffer.from(`{"result":${RESULT},"jsonrpc":"2.0","id":"${tag}"}`);
  const upstream: IncomingHttpHeaders = {
    'content-type': 'application/json',
    'content-length': String(body.length),
    date: 'Wed, 02 Dec 2026 16:00:00 GMT',
    connection: 'keep-alive',
  };
  const socket = sinkSocket();
  const req = new IncomingMessage(socket);
  req.method = 'POST';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  return () => {
    const res = new ServerResponse(req);
    res.shouldKeepAlive = true;
    res.assignSocket(socket);
    // As the pipeline answers a body of one request (integrity/step.ts).
    const ids = matchMod.exchangeIdsOf({ bytes: body, tags, sole: tag, soleEntry: entry });
    const rewrite = matchMod.createMatchRewrite(ids, filters);
    const relay = new relayMod.Relay(res, config, rewrite, hooks);
    relay.onRequestStart(controller);
    relay.onResponseStart(controller, 200, upstream);
    relay.onResponseData(controller, body);
    relay.onResponseEnd();
    res.detachSocket(socket);
  };
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

/** The floor proxy's answer: the upstream's content type set, the body given to end(). */
function floorOp(): () => void {
  const body = Buffer.from(`{"result":${RESULT},"jsonrpc":"2.0","id":42}`);
  const socket = sinkSocket();
  const req = new IncomingMessage(socket);
  req.method = 'POST';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  return () => {
    const res = new ServerResponse(req);
    res.shouldKeepAlive = true;
    res.assignSocket(socket);
    res.statusCode = 200;
    res.setHeader('content-type', 'application/json');
    res.end(body);
    res.detachSocket(socket);
  };
}

/** Bytes one response allocates, heap and Buffers (median of batches; run with a large young space). */
function allocated(op: () => void): number {
  const out: number[] = [];
  for (let k = 0; k < 15; k++) {
    const before = process.memoryUsage();
    for (let i = 0; i < 200; i++) op();
    const after = process.memoryUsage();
    const bytes = after.heapUsed - before.heapUsed + (after.external - before.external);
    if (bytes >= 0) out.push(bytes / 200);
  }
  return out.length === 0 ? NaN : median(out);
}

/** CPU ns per response; batches of 100 with an event-loop turn between (Node defers work to ticks). */
async function time(op: () => void): Promise<number> {
  for (let i = 0; i < 2_000; i++) op();
  await turn();
  const cpu = process.cpuUsage();
  for (let done = 0; done < OPS; done += 100) {
    for (let i = 0; i < 100; i++) op();
    await turn();
  }
  const used = process.cpuUsage(cpu);
  return ((used.user + used.system) * 1000) / OPS;
}

/**
 * Wall ns per response, the median over batches of 100 (each with the event-loop turn that runs its
 * deferred work), the subjects' batches taking turns in a rotating order: a loaded machine's
 * preemptions land in a few batches, which the median leaves out. Steadier than the CPU rounds when
 * other processes share the cores.
 */
async function interleaved(ops: (() => void)[]): Promise<number[]> {
  const samples = ops.map(() => [] as number[]);
  const batches = Math.max(50, Math.round((OPS * ROUNDS) / 100 / ops.length));
  for (let b = 0; b < batches; b++) {
    for (let k = 0; k < ops.length; k++) {
      const i = (b + k) % ops.length;
      const op = ops[i]!;
      const start = process.hrtime.bigint();
      for (let j = 0; j < 100; j++) op();
      await turn();
      samples[i]!.push(Number(process.hrtime.bigint() - start) / 100);
    }
  }
  return samples.map(median);
}

const subjects: [string, () => void][] = [['this', await load(resolve(import.meta.dirname, '..'))]];
if (values.against !== undefined) subjects.push(['against', await load(values.against)]);
subjects.push(['floor', floorOp()]);
console.log(`relay, ${OPS} responses x ${ROUNDS} rounds, load average ${loadavg()[0]!.toFixed(2)}`);
const results = subjects.map(() => [] as number[]);
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? [...subjects.keys()] : [...subjects.keys()].reverse();
  for (const i of order) results[i]!.push(await time(subjects[i]![1]));
}
const walls = await interleaved(subjects.map(([, op]) => op));
const bytes = subjects.map(([, op]) => allocated(op));
for (const [i, [name]] of subjects.entries())
  console.log(
    `${name.padEnd(8)} ${(median(results[i]!) / 1000).toFixed(2)} µs CPU per response, ` +
      `${(walls[i]! / 1000).toFixed(2)} µs wall (batch median)  ${bytes[i]!.toFixed(0)} B`,
  );
if (values.against !== undefined)
  console.log(
    `this/against CPU ${(median(results[0]!) / median(results[1]!)).toFixed(3)}, ` +
      `wall ${(walls[0]! / walls[1]!).toFixed(3)}`,
  );
console.log(`load average after: ${loadavg()[0]!.toFixed(2)}`);

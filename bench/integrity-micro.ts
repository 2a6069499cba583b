/**
 * Micro-benchmark of request tagging and response matching (src/integrity/), per request, beside
 * the work every request already costs in the same run (the strict parse of a small tools/call
 * body), so the ratio says what tagging adds to a pass-through call's CPU. Not part of the tests.
 *
 *   node bench/integrity-micro.ts [--ops 100000] [--rounds 5] [--against /path/to/other/checkout]
 *
 * Each line is the median over alternating rounds of the CPU time (user + system) per operation,
 * with the wall-clock p50 and p99 of batches of 100 beside it. With `--against`, the same operations
 * run on that checkout's src/integrity/ too, round by round interleaved with this one's, and each
 * line shows both and their ratio: an A/B in one process, under one load.
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseBody } from '../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../src/policy/methods.ts';
import { compileGrants } from '../src/policy/grants.ts';
import { TaskOwnership } from '../src/policy/tasks.ts';
import type { RequestContext } from '../src/pipeline/context.ts';
import type * as TagModule from '../src/integrity/request-tag.ts';
import type * as MatchModule from '../src/integrity/match.ts';
import type * as StepModule from '../src/integrity/step.ts';
import type * as CancelsModule from '../src/integrity/cancels.ts';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '5' },
    against: { type: 'string' },
  },
});
const OPS = Number(values.ops);
const ROUNDS = Number(values.rounds);
const BATCH = 100;

const CALL = Buffer.from(
  JSON.stringify({
    jsonrpc: '2.0',
    id: 42,
    method: 'tools/call',
    params: { name: 'echo', arguments: { message: 'hello from the bench, a short argument' } },
  }),
);
// The order the MCP TypeScript SDK writes a response in.
const RESULT = { content: [{ type: 'text', text: 'Echo: hello from the bench, a short argument' }] };
const RESPONSE_HEAD = JSON.stringify({ result: RESULT, jsonrpc: '2.0', id: '' }).slice(0, -3);
const responseTo = (id: string) => Buffer.from(`${RESPONSE_HEAD}"${id}"}`);
const grants = compileGrants({ allow: ['echo'], prompts: [], resources: [] });
const parsed = parseBody(CALL, KNOWN_METHODS);

/** One checkout's src/integrity/, and the operations timed on it. */
interface Subject {
  readonly name: string;
  readonly ops: Map<string, (i: number) => void>;
}

async function load(name: string, root: string): Promise<Subject> {
  const at = (file: string) => pathToFileURL(resolve(root, 'src/integrity', file)).href;
  const tagMod = (await import(at('request-tag.ts'))) as typeof TagModule;
  const matchMod = (await import(at('match.ts'))) as typeof MatchModule;
  const stepMod = (await import(at('step.ts'))) as typeof StepModule;
  const cancelsMod = (await import(at('cancels.ts'))) as typeof CancelsModule;
  const tagger = tagMod.createRequestTagger(Buffer.alloc(32, 3));
  const pending = new cancelsMod.PendingTags();
  const filters = { grants, tasks: undefined };
  const context = { tagger, bindingId: 'k:0123456789abcdef', sessionId: 'session-1', pending };
  // Checkouts from before sealed event ids have no event-ids.ts (their step takes no eventIds).
  const eventIds = await import(at('event-ids.ts')).then(
    (mod: { createEventIds(secret: Buffer): unknown }) => mod.createEventIds(Buffer.alloc(32, 3)),
    () => undefined,
  );
  const step = stepMod.createIntegrityStep({
    tagger,
    tasks: new TaskOwnership({ now: () => 0 }),
    pending,
    eventIds,
  } as Parameters<typeof stepMod.createIntegrityStep>[0]);
  const ctx = {
    principal: { kind: 'anonymous', name: 'anonymous', bindingId: 'k:0123456789abcdef', grants },
    messages: parsed.messages,
    pinReports: undefined,
  } as unknown as RequestContext;

  const forwarded = matchMod.tagRequests(parsed.bytes, parsed.messages, undefined, context);
  const sentId = (JSON.parse(forwarded.bytes.toString()) as { id: string }).id;
  const jsonBody = responseTo(sentId);
  const event = Buffer.from(`event: message\nid: 1\ndata: ${jsonBody.toString()}\n\n`);
  const progress = Buffer.from(
    `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 42, progress: 0, total: 1 } })}\n\n`,
  );
  const errorBody = Buffer.from(
    `{"jsonrpc":"2.0","id":"${sentId}","error":{"code":-32602,"message":"Unknown tool: echo2"}}`,
  );
  // The pipeline's own calls: the step tags the judged bytes, the response comes back to the rewrite.
  const exchange = () => {
    const { bytes, rewrite } = step.forward(ctx, parsed.bytes, undefined, 'session-1');
    return { rewrite, id: readId(bytes) };
  };
  const ops = new Map<string, (i: number) => void>([
    ['baseline: strict parse of the tools/call body', () => parseBody(CALL, KNOWN_METHODS)],
    [
      'tag the request (HMAC, splice, pending cancel map)',
      () => matchMod.tagRequests(parsed.bytes, parsed.messages, undefined, context),
    ],
    [
      'match a JSON response (parse, restore id, no list)',
      () => matchMod.createMatchRewrite(matchMod.exchangeIds(forwarded.tags), filters).json(jsonBody),
    ],
    [
      'match an SSE response event (frame, parse, restore id)',
      () => {
        const rewriter = matchMod.createMatchRewrite(matchMod.exchangeIds(forwarded.tags), filters).sse();
        rewriter.push(event);
        rewriter.end();
      },
    ],
    [
      'match an SSE progress notification (passes as it is)',
      () => {
        const rewriter = matchMod.createMatchRewrite(matchMod.exchangeIds(forwarded.tags), filters).sse();
        rewriter.push(progress);
        rewriter.end();
      },
    ],
    [
      'match a JSON error response (restore id)',
      () => matchMod.createMatchRewrite(matchMod.exchangeIds(forwarded.tags), filters).json(errorBody),
    ],
    ['untag on a GET stream (HMAC verify)', () => tagger.untag('k:0123456789abcdef', sentId)],
    [
      'step: forward + JSON response (one whole exchange)',
      () => {
        const { rewrite, id } = exchange();
        rewrite.json(responseTo(id));
      },
    ],
  ]);
  return { name, ops };
}

/** The tag in forwarded bytes (the only string starting "g1 in the bench's request). */
function readId(bytes: Buffer): string {
  const start = bytes.indexOf('"g1') + 1;
  return bytes.toString('latin1', start, bytes.indexOf(0x22, start));
}

/** CPU ns per op over `OPS` ops, and wall p50/p99 of batches. */
function time(op: (i: number) => void): { cpu: number; p50: number; p99: number } {
  for (let i = 0; i < 5_000; i++) op(i);
  const samples: number[] = [];
  const cpu = process.cpuUsage();
  for (let done = 0; done < OPS; done += BATCH) {
    const start = process.hrtime.bigint();
    for (let j = 0; j < BATCH; j++) op(done + j);
    samples.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  const used = process.cpuUsage(cpu);
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { cpu: ((used.user + used.system) * 1000) / OPS, p50: at(0.5), p99: at(0.99) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);

const subjects = [await load('this', resolve(import.meta.dirname, '..'))];
if (values.against !== undefined) subjects.push(await load('against', values.against));
const load1 = loadavg()
  .map((x) => x.toFixed(2))
  .join(' ');
console.log(
  `node ${process.version}, ${process.platform}/${process.arch}, ${OPS} ops x ${ROUNDS} rounds, load average ${load1}`,
);
const labels = [...(subjects[0] as Subject).ops.keys()];
const results = new Map<string, { cpu: number[]; p50: number[]; p99: number[] }>();
for (let round = 0; round < ROUNDS; round++) {
  for (const label of labels) {
    // Alternate which subject goes first, so neither always runs on a warmer or quieter machine.
    const order = round % 2 === 0 ? subjects : [...subjects].reverse();
    for (const subject of order) {
      const r = time(subject.ops.get(label) as (i: number) => void);
      const key = `${subject.name}\0${label}`;
      const into = results.get(key) ?? { cpu: [], p50: [], p99: [] };
      into.cpu.push(r.cpu);
      into.p50.push(r.p50);
      into.p99.push(r.p99);
      results.set(key, into);
    }
  }
}
const cpuOf = (name: string, label: string) => median(results.get(`${name}\0${label}`)?.cpu ?? [NaN]);
for (const label of labels) {
  const parts = subjects.map((s) => {
    const r = results.get(`${s.name}\0${label}`) as { cpu: number[]; p50: number[]; p99: number[] };
    return `${s.name} cpu ${fmt(median(r.cpu)).padStart(9)} (p50 ${fmt(median(r.p50))}, p99 ${fmt(median(r.p99))})`;
  });
  const ratio =
    subjects.length === 2
      ? `  this/against ${(cpuOf('this', label) / cpuOf('against', label)).toFixed(2)}`
      : '';
  console.log(`${label.padEnd(56)} ${parts.join('  ')}${ratio}`);
}
const [parse, tag, json, sse] = labels;
for (const s of subjects) {
  const base = cpuOf(s.name, parse as string);
  const perJson = cpuOf(s.name, tag as string) + cpuOf(s.name, json as string);
  const perSse = cpuOf(s.name, tag as string) + cpuOf(s.name, sse as string);
  console.log(
    `${s.name}: added per JSON call ${fmt(perJson)} = ${(perJson / base).toFixed(2)}x the strict parse; per SSE call ${fmt(perSse)} = ${(perSse / base).toFixed(2)}x`,
  );
}
console.log(
  `load average after: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);

/**
 * Micro-benchmark of request tagging and response matching (src/integrity/), per request, beside
 * the work every request already costs in the same run (the strict parse of a small tools/call
 * body), so the ratio says what tagging adds to a pass-through call's CPU. Not part of the tests.
 *
 *   node bench/integrity-micro.ts [--ops 100000]
 */
import { parseArgs } from 'node:util';
import { parseBody } from '../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../src/policy/methods.ts';
import { compileGrants } from '../src/policy/grants.ts';
import { createRequestTagger } from '../src/integrity/request-tag.ts';
import { createMatchRewrite, exchangeIds, tagRequests } from '../src/integrity/match.ts';
import { PendingTags } from '../src/integrity/cancels.ts';

const { values } = parseArgs({ options: { ops: { type: 'string', default: '100000' } } });
const OPS = Number(values.ops);
const BATCH = 100;

const tagger = createRequestTagger(Buffer.alloc(32, 3));
const pending = new PendingTags();
const filters = { grants: compileGrants({ allow: ['echo'], prompts: [], resources: [] }), tasks: undefined };
const CALL = Buffer.from(
  JSON.stringify({
    jsonrpc: '2.0',
    id: 42,
    method: 'tools/call',
    params: { name: 'echo', arguments: { message: 'hello from the bench, a short argument' } },
  }),
);
const result = { content: [{ type: 'text', text: 'Echo: hello from the bench, a short argument' }] };

function percentiles(samples: number[]) {
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}
const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);

function time(label: string, op: (i: number) => void): number {
  for (let i = 0; i < 20_000; i++) op(i);
  const samples: number[] = [];
  for (let done = 0; done < OPS; done += BATCH) {
    const start = process.hrtime.bigint();
    for (let j = 0; j < BATCH; j++) op(done + j);
    samples.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  const p = percentiles(samples);
  console.log(`${label.padEnd(58)} p50 ${fmt(p.p50).padStart(9)}  p99 ${fmt(p.p99).padStart(9)}`);
  return p.p50;
}

console.log(`node ${process.version}, ${process.platform}/${process.arch}, ${OPS} ops per line`);
const parse = time('baseline: strict parse of the tools/call body', () => {
  parseBody(CALL, KNOWN_METHODS);
});
const parsed = parseBody(CALL, KNOWN_METHODS);
const context = { tagger, bindingId: 'key-hash-prefix', sessionId: 'session-1', pending };
const tag = time('tag the request (HMAC, splice, pending cancel map)', () => {
  tagRequests(parsed.bytes, parsed.messages, undefined, context);
});
const forwarded = tagRequests(parsed.bytes, parsed.messages, undefined, context);
const sentId = (JSON.parse(forwarded.bytes.toString()) as { id: string }).id;
const jsonBody = Buffer.from(JSON.stringify({ result, jsonrpc: '2.0', id: sentId }));
const json = time('match a JSON response (parse, restore id, no list)', () => {
  createMatchRewrite(exchangeIds(forwarded.tags), filters).json(jsonBody);
});
const event = Buffer.from(`event: message\nid: 1\ndata: ${jsonBody.toString()}\n\n`);
const sse = time('match an SSE response event (frame, parse, restore id)', () => {
  const rewriter = createMatchRewrite(exchangeIds(forwarded.tags), filters).sse();
  rewriter.push(event);
  rewriter.end();
});
time('untag on a GET stream (HMAC verify)', () => {
  tagger.untag('key-hash-prefix', sentId);
});
console.log(
  `added per JSON call: ${fmt(tag + json)} = ${((tag + json) / parse).toFixed(2)}x the strict parse; per SSE call: ${fmt(tag + sse)} = ${((tag + sse) / parse).toFixed(2)}x`,
);

/**
 * Micro-benchmark of tools/list filtering with and without pinning (not part of the tests): the
 * response to one tools/list of 1,000 realistic tools (bench/tools.ts, ~650 KiB) filtered in
 * process, as the relay filters a JSON body, the variants interleaved in one run:
 *
 *   - half, no pinning:   a key with five prefix patterns (500 tools kept), pinning off
 *   - half, pinned:       the same key, every tool pinned and unchanged (the steady state)
 *   - allow *, pinned:    a key allowed everything: without pinning its list is not read at all;
 *                         with pinning every entry is judged
 *   - half, pinned, cold: a fresh pinning state for every list (every entry parsed and hashed:
 *                         the first list after start, or an upstream that changed every tool)
 *
 *   node bench/pinning-micro.ts [--rounds 200]
 */
import { parseArgs } from 'node:util';
import { filterJsonResponseBody } from '../src/policy/filter-list.ts';
import { compileGrants } from '../src/policy/grants.ts';
import { lockfileOf } from '../src/pinning/lockfile.ts';
import { pinningFor } from '../src/pinning/pins.ts';
import type { Pinning } from '../src/pinning/pins.ts';
import { halfAllowlist, makeTools } from './tools.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '200' } } });
const ROUNDS = Number(values.rounds);
const TOOLS = 1000;

const tools = makeTools(TOOLS);
const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools } }));
const plan = new Map([[1, 'tools' as const]]);
const half = compileGrants({ allow: halfAllowlist(TOOLS), prompts: [], resources: [] });
const every = compileGrants({ allow: ['*'], prompts: [], resources: [] });
const lock = lockfileOf({ tools: tools as unknown as Record<string, unknown>[], prompts: [] });
const quiet = () => {};
const warm = pinningFor(lock, 'hide', quiet);

type Variant = { label: string; run: () => Buffer };
const variants: Variant[] = [
  { label: 'half, no pinning', run: () => filterJsonResponseBody(body, plan, half) },
  {
    label: 'half, pinned',
    run: () => filterJsonResponseBody(body, plan, half, undefined, warm.forList()),
  },
  {
    label: 'allow *, pinned',
    run: () => filterJsonResponseBody(body, plan, every, undefined, warm.forList()),
  },
  {
    label: 'half, pinned, cold',
    run: () => {
      const cold: Pinning = pinningFor(lock, 'hide', quiet);
      return filterJsonResponseBody(body, plan, half, undefined, cold.forList());
    },
  },
];

// Every variant must keep what it should before anything is timed.
const kept = (out: Buffer) =>
  (JSON.parse(out.toString()) as { result: { tools: unknown[] } }).result.tools.length;
for (const v of variants) {
  const n = kept(v.run());
  const want = v.label.startsWith('allow') ? TOOLS : TOOLS / 2;
  if (n !== want) throw new Error(`${v.label}: kept ${n}, expected ${want}`);
}

const samples = new Map<string, number[]>(variants.map((v) => [v.label, []]));
for (let i = 0; i < 30; i++) for (const v of variants) v.run();
for (let r = 0; r < ROUNDS; r++) {
  for (const v of variants) {
    const start = process.hrtime.bigint();
    v.run();
    samples.get(v.label)!.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const base = median(samples.get('half, no pinning')!);
console.log(
  `tools/list of ${TOOLS} tools, ${(body.length / 1024).toFixed(0)} KiB, ${ROUNDS} rounds interleaved`,
);
for (const v of variants) {
  const m = median(samples.get(v.label)!);
  console.log(`${v.label.padEnd(20)} median ${m.toFixed(3)} ms  ratio ${(m / base).toFixed(2)}x`);
}

/**
 * A fuzzed search for slow request bodies: how long can one body of at most `limits.max_body_bytes`
 * (4 MiB) hold the event loop in the gateway's parse (pre-scan, strict UTF-8 decode, JSON.parse,
 * validation, re-serialisation)? Bodies are a tools/call whose argument repeats a random unit of
 * JSON tokens until the size is reached; the slowest units found are mutated (hill climbing), next
 * to hand-written shapes known to be expensive (deep nesting, many empty containers, distinct
 * keys, escapes, lossy numbers). Prints the worst shapes and their times (median of 3 runs each).
 *
 *   node bench/parse-fuzz.ts [--seconds 30] [--seed 1] [--runs 3] [--against /path/to/other/checkout]
 *                            [--deep-numbers]
 *
 * Bodies are parsed as the gateway parses them by default (`audit.log_arguments` off, no
 * `Mcp-Param-*` header: kept numbers below a message's params members are not placed, and long
 * strings in `params.arguments` are not built); with `--deep-numbers`, as with
 * `audit.log_arguments` on (every kept number placed, every string built).
 *
 * Each line also gives the page faults of one parse (process.resourceUsage().minorPageFault, the
 * median over the runs): on a VM where a fault costs ~11 µs, a body's fresh large strings (V8
 * maps every object above ~128 KiB afresh) can cost more than the parse.
 *
 * With `--against`, every body is also parsed by that checkout's parseBody, interleaved with this
 * one's and with JSON.parse (an A/B in one process, under one load), and each line shows both.
 */
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { BODY_LIMITS, parseBody } from '../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../src/policy/methods.ts';
import { CALL } from './measure.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    seed: { type: 'string', default: '1' },
    against: { type: 'string' },
    runs: { type: 'string', default: '3' },
    'deep-numbers': { type: 'boolean', default: false },
  },
});
const RUNS = Math.max(1, Number(values.runs) | 0);
const DEEP = values['deep-numbers'];
type Parse = typeof parseBody;
const other: Parse | undefined =
  values.against === undefined
    ? undefined
    : (
        (await import(pathToFileURL(resolve(values.against, 'src/jsonrpc/parse.ts')).href)) as {
          parseBody: Parse;
        }
      ).parseBody;
const BUDGET_MS = Number(values.seconds) * 1000;
const MAX = 4 * 1024 * 1024;
let seed = Number(values.seed) >>> 0 || 1;
const rand = (n: number): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};

const PRE = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[';
const POST = '0]}}}';
const TOKENS = [
  '{}',
  '[]',
  '0',
  '-0',
  '1.0',
  '1e400',
  '12345678901234567890',
  'true',
  'null',
  '""',
  '"a"',
  '"\\""',
  '"\\\\"',
  '"\\u00e9"',
  '"\\ud83d\\ude00"',
  '"é"',
  '"😀"',
  '{"a":0}',
  '{"a":{}}',
  '[[]]',
  '[{}]',
  '"\\n"',
  '{"__proto_":1}',
  '{"k":"v","k":"w"}',
  '"' + 'x'.repeat(64) + '"',
];

interface Shape {
  readonly name: string;
  readonly body: Buffer;
}

function fromUnit(unit: string, name: string, pre = PRE): Shape {
  const count = Math.max(1, Math.floor((MAX - pre.length - POST.length) / (Buffer.byteLength(unit) + 1)));
  return { name, body: Buffer.from(pre + `${unit},`.repeat(count) + POST) };
}

/** The units in `params._meta`, which a reader reads, so JSON.parse builds them (never left out). */
const META = PRE.replace('"arguments"', '"_meta"');

function handWritten(): Shape[] {
  const inner = (s: string) => Buffer.from(`${PRE}${s},${POST}`);
  const keys: string[] = [];
  for (let i = 0, size = 0; size < MAX - 200; i++) {
    keys.push(`"k${i}":0`);
    size += (keys[i] as string).length + 1;
  }
  return [
    { name: 'open brackets to 4 MiB', body: inner('['.repeat(MAX - 200)) },
    { name: 'one 4 MiB string', body: inner(`"${'a'.repeat(MAX - 200)}"`) },
    {
      name: 'one 4 MiB string as the tool name (read)',
      body: Buffer.from(`${PRE.replace('"name":"x"', `"name":"${'a'.repeat(MAX - 200)}"`)}${POST}`),
    },
    {
      name: 'one 4 MiB string in params._meta (read)',
      body: Buffer.from(
        `${PRE.replace('"name":"x"', `"name":"x","_meta":{"k":"${'a'.repeat(MAX - 200)}"}`)}${POST}`,
      ),
    },
    { name: 'one string of escaped quotes', body: inner(`"${'\\"'.repeat((MAX - 200) / 2)}"`) },
    { name: 'one string of \\u escapes', body: inner(`"${'\\u00e9'.repeat((MAX - 200) / 6)}"`) },
    { name: 'one string of 2-byte UTF-8', body: inner(`"${'é'.repeat((MAX - 200) / 2)}"`) },
    { name: 'one number of 4 MiB digits', body: inner('1'.repeat(MAX - 200)) },
    {
      name: 'one number of 4 MiB digits, a key repeated',
      body: inner(`{"k":0,"k":${'1'.repeat(MAX - 220)}}`),
    },
    fromUnit('1'.repeat(4000), '1,000 numbers of 4,000 digits'),
    fromUnit('1'.repeat(400), '10,000 numbers of 400 digits'),
    fromUnit(`1.0,"${'a'.repeat(80)}"`, '1.0 between 80-byte strings'),
    { name: 'distinct keys in one object', body: inner(`{${keys.join(',')}}`) },
    fromUnit('{}', 'empty objects'),
    fromUnit('"' + 'x'.repeat(4000) + '"', '4 KB strings'),
    fromUnit('{"' + 'k'.repeat(1000) + '":0}', 'objects with a 1 KB key'),
    // Shapes the fuzzed units cannot reach (a unit of mixed tokens hits the value limit first):
    // many short strings holding a \u escape, and many keys spelled with one.
    fromUnit(`"${'a'.repeat(34)}\\u00e9"`, '40-byte strings holding a \\u escape'),
    fromUnit(
      `{"${'a'.repeat(104)}\\u0061":1,"${'b'.repeat(104)}":2}`,
      'objects with a 110-byte key spelled with \\u',
    ),
    fromUnit(
      `{"${'a'.repeat(104)}\\u0061":1,"${'b'.repeat(104)}\\\\":2}`,
      'the same with a second key holding a backslash',
    ),
    fromUnit(`{"${'a'.repeat(104)}":1,"${'b'.repeat(104)}":2}`, 'objects with two 104-byte keys'),
    // The same where a reader reads them: JSON.parse builds them, the walk over the parsed value
    // reads them, and keys spelled with escapes are checked and re-spelled.
    fromUnit(
      `{"${'a'.repeat(104)}":1,"${'b'.repeat(104)}":2}`,
      'objects with two 104-byte keys (read)',
      META,
    ),
    fromUnit(
      `{"${'a'.repeat(104)}\\u0061":1,"${'b'.repeat(104)}":2}`,
      'objects with a 110-byte key spelled with \\u (read)',
      META,
    ),
    fromUnit(
      `{"${'a'.repeat(104)}\\u0061":1,"${'b'.repeat(104)}\\\\":2}`,
      'the same with a second key holding a backslash (read)',
      META,
    ),
    // Strings that must be re-spelled (a \u escape) where a reader reads them: the splice writes
    // each one again, 100,000 of them at the value limit.
    fromUnit(`"${'a'.repeat(34)}\\u00e9"`, '40-byte strings holding a \\u escape (read)', META),
  ];
}

/** One body's parse times (ms), page faults and outcome, this build's and the other's. */
interface Timing {
  ms: number;
  plainMs: number;
  otherMs: number;
  outcome: string;
  faults: number;
  otherFaults: number;
}

/**
 * Median of RUNS runs of parseBody, and of JSON.parse of the same bytes (decoded as UTF-8) interleaved
 * with them: the floor any parse pays, measured under the same load.
 */
function time(body: Buffer): Timing {
  const runs: number[] = [];
  const faults: number[] = [];
  const otherFaults: number[] = [];
  const plain: number[] = [];
  const others: number[] = [];
  let outcome = '';
  for (let i = 0; i < RUNS; i++) {
    if (other !== undefined) {
      const f = process.resourceUsage().minorPageFault;
      const t = performance.now();
      try {
        other(body, KNOWN_METHODS, BODY_LIMITS, DEEP);
      } catch {
        // timed all the same
      }
      others.push(performance.now() - t);
      otherFaults.push(process.resourceUsage().minorPageFault - f);
    }
    const f0 = process.resourceUsage().minorPageFault;
    const t0 = performance.now();
    try {
      parseBody(body, KNOWN_METHODS, BODY_LIMITS, DEEP);
      outcome = 'parsed';
    } catch (err) {
      outcome = `refused: ${(err as Error).message}`;
    }
    const t1 = performance.now();
    faults.push(process.resourceUsage().minorPageFault - f0);
    try {
      JSON.parse(body.toString('utf8'));
    } catch {
      // the floor of a body JSON.parse refuses is the time it took to refuse it
    }
    plain.push(performance.now() - t1);
    runs.push(t1 - t0);
  }
  runs.sort((a, b) => a - b);
  plain.sort((a, b) => a - b);
  others.sort((a, b) => a - b);
  faults.sort((a, b) => a - b);
  otherFaults.sort((a, b) => a - b);
  const mid = RUNS >> 1;
  return {
    ms: runs[mid] as number,
    plainMs: plain[mid] as number,
    otherMs: others[mid] ?? NaN,
    outcome,
    faults: faults[mid] as number,
    otherFaults: otherFaults[mid] ?? NaN,
  };
}

function randomUnit(): string {
  const n = 1 + rand(6);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(TOKENS[rand(TOKENS.length)] as string);
  return rand(2) === 0 ? parts.join(',') : `{${parts.map((p, i) => `"${i}":${p}`).join(',')}}`;
}

function mutate(unit: string): string {
  const choice = rand(4);
  if (choice === 0) return `[${unit}]`;
  if (choice === 1) return `${unit},${TOKENS[rand(TOKENS.length)]}`;
  if (choice === 2) return `{"${rand(1000)}":${unit}}`;
  return randomUnit();
}

const results: (Timing & { name: string; bytes: number; unit?: string })[] = [];
const load0 = loadavg()[0] as number;
const shapes = handWritten();
for (const shape of shapes) results.push({ ...time(shape.body), name: shape.name, bytes: shape.body.length });

const start = performance.now();
let pool = Array.from({ length: 8 }, randomUnit);
let tried = 0;
while (performance.now() - start < BUDGET_MS) {
  const scored = pool.map((unit) => {
    const shape = fromUnit(
      unit,
      `fuzzed unit ${unit.length > 100 ? unit.slice(0, 50) + '…' + unit.slice(-50) : unit}`,
    );
    tried++;
    const r = time(shape.body);
    results.push({ ...r, name: shape.name, bytes: shape.body.length, unit });
    return { unit, ms: r.ms };
  });
  scored.sort((a, b) => b.ms - a.ms);
  const best = scored.slice(0, 3).map((s) => s.unit);
  pool = [...best, ...best.map(mutate), mutate(best[0] as string), randomUnit()];
}

const line = (r: (typeof results)[number]): string => {
  const against =
    other === undefined
      ? ''
      : `  against: ${r.otherMs.toFixed(1)} ms ×${(r.otherMs / r.plainMs).toFixed(2)} ${r.otherFaults} faults`;
  return `${r.ms.toFixed(1).padStart(7)} ms  ×${(r.ms / r.plainMs).toFixed(2).padEnd(5)} ${String(r.faults).padStart(5)} faults (JSON.parse ${r.plainMs.toFixed(1)} ms)${against}  ${(r.bytes / 1048576).toFixed(2)} MiB  ${r.name}  (${r.outcome.slice(0, 60)})`;
};
/** The first `count` results in this order, one per name. */
const top = (sorted: typeof results, count: number): void => {
  const seen = new Set<string>();
  for (const r of sorted) {
    if (seen.has(r.name)) continue;
    seen.add(r.name);
    console.log(line(r));
    if (seen.size >= count) break;
  }
};
const handWrittenResults = results.slice(0, shapes.length);
results.sort((a, b) => b.ms - a.ms);
console.log(
  `parse-fuzz: ${tried} fuzzed bodies + ${shapes.length} hand-written, each ≤ ${MAX} bytes; load average ${load0.toFixed(2)} at start, ${(loadavg()[0] as number).toFixed(2)} at end`,
);
console.log(
  `parseBody${DEEP ? ' (every kept number placed)' : ''}, and that time over JSON.parse of the same bytes in the same run (median of ${RUNS} each).`,
);
console.log('Slowest:');
top(results, 12);
console.log('Highest ratio to JSON.parse, bodies parsed:');
top(
  results.filter((r) => r.outcome === 'parsed').sort((a, b) => b.ms / b.plainMs - a.ms / a.plainMs),
  6,
);
if (other !== undefined) {
  console.log('Hand-written shapes:');
  for (const r of handWrittenResults) console.log(line(r));
}
const worst = results.find((r) => r.unit !== undefined);
if (worst) console.log(`slowest fuzzed unit in full (repeated, comma-separated, to the size): ${worst.unit}`);

if (other !== undefined) {
  // The hot path: the throughput scenarios' tools/call, 21 interleaved rounds of 20,000 parses each.
  const call = Buffer.from(CALL);
  const round = (parse: Parse): number => {
    const t = performance.now();
    for (let i = 0; i < 20_000; i++) parse(call, KNOWN_METHODS, BODY_LIMITS, DEEP);
    return ((performance.now() - t) * 1e6) / 20_000;
  };
  const mine: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < 21; r++) {
    theirs.push(round(other));
    mine.push(round(parseBody));
  }
  mine.sort((a, b) => a - b);
  theirs.sort((a, b) => a - b);
  const a = mine[10] as number;
  const b = theirs[10] as number;
  console.log(
    `${call.length}-byte tools/call, median of 21 interleaved rounds of 20,000: this ${a.toFixed(0)} ns, against ${b.toFixed(0)} ns (×${(a / b).toFixed(2)}); load average ${(loadavg()[0] as number).toFixed(2)}`,
  );
}

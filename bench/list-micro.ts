/**
 * Micro-benchmark of matching one tools/list response of 1,000 tools (bench/tools.ts, ~660 KiB) in
 * process, as the relay does with a held JSON body: the one-pass list path (src/integrity/
 * list-match.ts) against the parsed path (decode, JSON.parse, id splice, filter), interleaved in
 * one run, for a key allowed half of the tools and a key allowed `*`, id first and id last (the
 * TypeScript SDK writes `result` before `id`). The list path is measured twice: as a repeated
 * catalogue is (the scan memo remembers the body, policy/list-scan-memo.ts) and cold (the memo
 * emptied first, so the body is scanned). Not part of the tests.
 *
 *   node bench/list-micro.ts [--rounds 200]
 */
import { parseArgs } from 'node:util';
import { createMatchRewrite, exchangeIds } from '../src/integrity/match.ts';
import type { ResponseIds } from '../src/integrity/match.ts';
import { createRequestTagger } from '../src/integrity/request-tag.ts';
import type { Untagged } from '../src/integrity/request-tag.ts';
import { compileGrants } from '../src/policy/grants.ts';
import { filterJsonResponseBody } from '../src/policy/filter-list.ts';
import { restoreIds } from '../src/integrity/restore.ts';
import { clearListScanMemo } from '../src/policy/list-scan-memo.ts';
import { halfAllowlist, makeTools } from './tools.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '200' } } });
const ROUNDS = Number(values.rounds);
const tools = makeTools(1000);
const tagger = createRequestTagger(Buffer.alloc(32, 7));
const half = compileGrants({ allow: halfAllowlist(1000), prompts: [], resources: [] });
const every = compileGrants({ allow: ['*'], prompts: [], resources: [] });

type Path = 'parsed path' | 'list path' | 'list path, cold';

/** A fresh exchange per response (each id is answered once); `parsed path` hides the list path. */
function match(idFirst: boolean, grants: typeof half, path: Path): Buffer {
  const parsed = path === 'parsed path';
  if (path === 'list path, cold') clearListScanMemo();
  // A key allowed every tool plans nothing for its list (policy/judge.ts): it is matched, not filtered.
  const plan = grants === every ? 'none' : 'tools';
  const tag = tagger.tag('k', 1, plan);
  const body = Buffer.from(
    idFirst
      ? `{"jsonrpc":"2.0","id":"${tag}","result":${JSON.stringify({ tools })}}`
      : `{"result":${JSON.stringify({ tools })},"jsonrpc":"2.0","id":"${tag}"}`,
  );
  const ids = exchangeIds(new Map<string, Untagged>([[tag, { clientId: 1, plan }]]));
  const rewrite = createMatchRewrite(ids, { grants, tasks: undefined });
  const start = process.hrtime.bigint();
  const out = parsed ? parsedPath(body, ids, grants) : rewrite.json(body);
  const took = Number(process.hrtime.bigint() - start) / 1e6;
  times.push(took);
  return out;
}
let times: number[] = [];

/** What match.ts does for a body the one-pass path does not take. */
function parsedPath(body: Buffer, ids: ResponseIds, grants: typeof half): Buffer {
  const text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  const restored = restoreIds(text, JSON.parse(text), ids)!;
  const out = Buffer.from(restored.text);
  return restored.plans === undefined ? out : filterJsonResponseBody(out, restored.plans, grants);
}

const PATHS: Path[] = ['parsed path', 'list path, cold', 'list path'];
const variants = [
  { label: 'half, id first', idFirst: true, grants: half, want: 500 },
  { label: 'half, id last', idFirst: false, grants: half, want: 500 },
  { label: 'allow *, id first', idFirst: true, grants: every, want: 1000 },
];
for (const v of variants) {
  for (const path of PATHS) {
    const out = JSON.parse(match(v.idFirst, v.grants, path).toString()) as {
      id: number;
      result: { tools: unknown[] };
    };
    if (out.id !== 1 || out.result.tools.length !== v.want) throw new Error(`${v.label}: wrong output`);
  }
}
const results = new Map<string, number[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const v of variants) {
    for (const path of PATHS) {
      times = [];
      match(v.idFirst, v.grants, path);
      const key = `${v.label}, ${path}`;
      const list = results.get(key) ?? [];
      list.push(times[0]!);
      results.set(key, list);
    }
  }
}
const load = (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
console.log(`${ROUNDS} rounds, load average ${load}`);
for (const [key, list] of results) {
  list.sort((a, b) => a - b);
  const p = (q: number) => list[Math.min(list.length - 1, Math.floor(q * list.length))]!.toFixed(2);
  console.log(`${key.padEnd(36)} p50 ${p(0.5)} ms  p90 ${p(0.9)} ms  p99 ${p(0.99)} ms`);
}

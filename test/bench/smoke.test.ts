/**
 * The benchmark in CI, as a smoke run only: every scenario starts its processes, checks each target
 * answers like the origin, and measures, in a run far too short for its figures to mean anything.
 * It fails when the harness cannot measure (a process does not start, a target answers wrongly, or
 * requests fail under load), never on a missed target, so it cannot flake on a slow machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SCENARIOS } from '../../bench/scenarios.ts';

const RUNNER = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));

test('every bench scenario still measures (smoke run)', { timeout: 300_000 }, async () => {
  const child = spawn(process.execPath, [RUNNER, '--smoke'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const problems = out.split('\n').filter((line) => line.startsWith('!!'));
  assert.equal(code, 0, [...problems, out.slice(-2000)].join('\n'));
  for (const scenario of SCENARIOS) {
    // Each scenario prints its result table (the header row of report.table) under its own title.
    const block = out.slice(out.indexOf(`### ${scenario.title}`));
    assert.ok(out.includes(`### ${scenario.title}`), `no result block for ${scenario.name}`);
    assert.match(block, /\| Metric\s+\| Baseline/, `no result table for ${scenario.name}`);
  }
  // Issue 14's targets are judged against the floor measured in the same rounds.
  const blockOf = (name: string) => {
    const title = `### ${SCENARIOS.find((s) => s.name === name)!.title}`;
    const from = out.indexOf(title) + title.length;
    const end = out.indexOf('\n### ', from);
    return out.slice(from, end === -1 ? undefined : end);
  };
  const targets: [string, RegExp][] = [
    ['passthrough', /\| mcpgate vs floor: CPU per request .*\| ≤ 1\.15× +\| (PASS|MISS) \|/],
    ['passthrough', /\| mcpgate vs floor: p99, 32 conns .*\| ≤ 1\.50× +\| (PASS|MISS) \|/],
    ['passthrough', /\| median latency, 1 conn .*\| ≤ \+150 µs +\| (PASS|MISS) \|/],
    ['pipeline', /\| mcpgate vs floor: CPU per request .*\| ≤ 1\.30× +\| (PASS|MISS) \|/],
    ['pipeline', /\| mcpgate vs floor, 32 conns .*\| ≥ 75\.0% +\| (PASS|MISS) \|/],
    ['pipeline', /\| mcpgate vs floor: p99, 32 conns .*\| ≤ 1\.50× +\| (PASS|MISS) \|/],
    ['pipeline', /\| median latency, 1 conn .*\| ≤ \+150 µs +\| (PASS|MISS) \|/],
  ];
  for (const [name, row] of targets) assert.match(blockOf(name), row, `${name}: no row ${row}`);
});

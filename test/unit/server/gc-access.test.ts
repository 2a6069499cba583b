/**
 * Where the gateway's gc comes from (src/server/gc-access.ts), each case in a fresh process: the
 * process's own when it was started with --expose-gc, else one handed over by a second V8 context,
 * with the flag unset again and no `gc` left on the main context.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const MODULE = new URL('../../../src/server/gc-access.ts', import.meta.url).href;

function report(nodeArgs: readonly string[]): {
  source: string;
  same: boolean;
  global: string;
  runs: boolean;
} {
  const script = `
    const { exposedGc, gcSource } = await import(${JSON.stringify(MODULE)});
    const gc = exposedGc();
    gc({ type: 'minor' });
    process.stdout.write(JSON.stringify({
      source: gcSource(),
      same: gc === globalThis.gc,
      global: typeof globalThis.gc,
      runs: typeof gc === 'function',
    }));
  `;
  const out = execFileSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return JSON.parse(out) as { source: string; same: boolean; global: string; runs: boolean };
}

describe('gc access', () => {
  it('a process started with --expose-gc uses its own gc (no second context)', () => {
    assert.deepEqual(report(['--expose-gc']), { source: 'flag', same: true, global: 'function', runs: true });
  });

  it('otherwise a second context hands its gc over, and the main context gets none', () => {
    assert.deepEqual(report([]), { source: 'context', same: false, global: 'undefined', runs: true });
  });
});

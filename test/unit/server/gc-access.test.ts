/**
 * Where the gateway's gc comes from (src/server/gc-access.ts), each case in a fresh process: the
 * process's own when it was started with --expose-gc, else one handed over by a second V8 context,
 * with the flag unset again (a context made afterwards has no `gc`).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const MODULE = new URL('../../../src/server/gc-access.ts', import.meta.url).href;

interface Report {
  source: string;
  same: boolean;
  global: string;
  later: string;
  runs: boolean;
}

function report(nodeArgs: readonly string[]): Report {
  const script = `
    const { runInNewContext } = await import('node:vm');
    const { exposedGc, gcSource } = await import(${JSON.stringify(MODULE)});
    const gc = exposedGc();
    gc({ type: 'minor' });
    process.stdout.write(JSON.stringify({
      source: gcSource(),
      same: gc === globalThis.gc,
      global: typeof globalThis.gc,
      // A context made now gets gc only if the flag is still set.
      later: runInNewContext('typeof gc'),
      runs: typeof gc === 'function',
    }));
  `;
  const out = execFileSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return JSON.parse(out) as Report;
}

describe('gc access', () => {
  it('a process started with --expose-gc uses its own gc (no second context)', () => {
    assert.deepEqual(report(['--expose-gc']), {
      source: 'flag',
      same: true,
      global: 'function',
      later: 'function',
      runs: true,
    });
  });

  it('otherwise a second context hands its gc over, and the flag is unset again', () => {
    assert.deepEqual(report([]), {
      source: 'context',
      same: false,
      global: 'undefined',
      later: 'undefined',
      runs: true,
    });
  });
});

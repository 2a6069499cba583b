/** A repeating log line is written once per interval, with the count of the ones it stands for. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRateLimitedLog } from '../../../src/log/rate-limited.ts';

describe('rate-limited log', () => {
  it('writes the first at once, counts repeats within the interval, reports the count on the next line', () => {
    let now = 0;
    const lines: [string, Record<string, unknown>, string][] = [];
    const sink = (level: string) => (fields: object | string, msg?: string) =>
      void lines.push([level, fields as Record<string, unknown>, msg ?? '']);
    const limited = createRateLimitedLog(
      { warn: sink('warn'), error: sink('error'), info: sink('info') },
      { now: () => now, intervalMs: 1000 },
    );
    limited('a', 'warn', { kind: 'a' }, 'first');
    for (let i = 0; i < 5; i++) {
      now += 100;
      limited('a', 'warn', { kind: 'a' }, 'again');
    }
    limited('b', 'error', { kind: 'b' }, 'other key');
    assert.deepEqual(lines, [
      ['warn', { kind: 'a' }, 'first'],
      ['error', { kind: 'b' }, 'other key'],
    ]);
    now = 1000;
    limited('a', 'warn', { kind: 'a' }, 'later');
    assert.deepEqual(lines.at(-1), ['warn', { kind: 'a', repeated: 5, interval_ms: 1000 }, 'later']);
    now = 2500;
    limited('a', 'warn', { kind: 'a' }, 'quiet since');
    assert.deepEqual(lines.at(-1), ['warn', { kind: 'a' }, 'quiet since']);
  });
});

/** The audit line's time is exactly toISOString's, across second, day and year boundaries. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isoTime } from '../../../src/audit/iso-time.ts';

const MAX_DATE_MS = 8.64e15;

it('equals new Date(ms).toISOString() for any time, in any order of calls', () => {
  const around = (ms: number) => [ms - 1001, ms - 1000, ms - 1, ms, ms + 1, ms + 999, ms + 1000];
  const edges = [
    0,
    Date.parse('2026-12-31T23:59:59.999Z'),
    Date.parse('1969-12-31T23:59:59.999Z'),
    Date.parse('0000-01-01T00:00:00Z'),
    Date.parse('9999-12-31T23:59:59.999Z'),
    MAX_DATE_MS - 1000,
    -MAX_DATE_MS + 1000,
  ];
  for (const ms of edges.flatMap(around).filter((ms) => Math.abs(ms) <= MAX_DATE_MS))
    assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.integer({ min: -MAX_DATE_MS, max: MAX_DATE_MS }),
        fc.integer({ min: Date.parse('2020-01-01'), max: Date.parse('2040-01-01') }),
        fc.double({ min: -MAX_DATE_MS, max: MAX_DATE_MS, noNaN: true }),
      ),
      (ms) => assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms)),
    ),
    { numRuns: 5000 },
  );
  // A run of lines in one second, then the next second, then back (a clock stepped backwards).
  const t = Date.parse('2026-12-02T17:00:00Z');
  for (const ms of [t, t + 1, t + 500, t + 999, t + 1000, t + 1001, t - 1, t + 2])
    assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
});

it('throws as toISOString does for a time outside the Date range', () => {
  for (const ms of [NaN, Infinity, MAX_DATE_MS + 1, -MAX_DATE_MS - 1])
    assert.throws(() => isoTime(ms), RangeError, String(ms));
});

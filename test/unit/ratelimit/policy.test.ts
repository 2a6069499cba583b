import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileLimits } from '../../../src/ratelimit/policy.ts';
import { compileMatcher } from '../../../src/policy/glob.ts';

/** Tool buckets match their pattern with the allowlists' matcher. */
const compileWildcard = (pattern: string) => compileMatcher([pattern]);
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';

const defaults = { capacity: 60, refill_per_second: 1, max_streams: 10 };
const call = (id: number, name: string): JsonRpcMessage => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name },
});
const ping = (id: number): JsonRpcMessage => ({ jsonrpc: '2.0', id, method: 'ping' });
const note: JsonRpcMessage = { jsonrpc: '2.0', method: 'notifications/initialized' };
const reply: JsonRpcMessage = { jsonrpc: '2.0', id: 7, result: {} };

describe('rate limit policy', () => {
  it('takes the defaults, and the key overrides them field by field', () => {
    const plain = compileLimits('key:a', defaults);
    assert.deepEqual(
      { ...plain.bucket },
      { key: '{key:a}', name: 'default', tool: undefined, capacity: 60, refillPerSecond: 1 },
    );
    assert.equal(plain.maxStreams, 10);
    const own = compileLimits('key:b', defaults, { capacity: 5, max_streams: 2 });
    assert.equal(own.bucket.capacity, 5);
    assert.equal(own.bucket.refillPerSecond, 1);
    assert.equal(own.maxStreams, 2);
  });

  it('adds the tool bucket: exact names before wildcards, the most literal wildcard first', () => {
    const limits = compileLimits('key:a', defaults, {
      tools: {
        '*': { capacity: 100, refill_per_second: 1 },
        'search_*': { capacity: 10, refill_per_second: 0.5 },
        search_web: { capacity: 2, refill_per_second: 0.0167 },
      },
    });
    assert.equal(limits.toolBucket('search_web')?.tool, 'search_web');
    assert.equal(limits.toolBucket('search_docs')?.tool, 'search_*');
    assert.equal(limits.toolBucket('echo')?.tool, '*');
    const plan = limits.plan('search_web');
    assert.deepEqual(
      plan.buckets.map((b) => [b.key, b.name, b.capacity, b.refillPerSecond]),
      [
        ['{key:a}', 'default', 60, 1],
        ['{key:a}:tool:search_web', 'tool:search_web', 2, 0.0167],
      ],
    );
    assert.equal(plan.costs, 1);
    assert.equal(limits.plan('search_web'), plan, 'plans are built once');
    assert.equal(limits.plan(), limits.plan(undefined));
    assert.equal(limits.plan().buckets.length, 1);
  });

  it('plans a body: one token per message, notifications and responses included', () => {
    const limits = compileLimits('key:a', defaults, {
      tools: { 'search_*': { capacity: 10, refill_per_second: 1 } },
    });
    // No free work: a key cannot flood the gateway and the upstream with notifications or responses.
    assert.equal(limits.planMessages([note]), limits.plan());
    assert.equal(limits.planMessages([reply]), limits.plan());
    assert.deepEqual(limits.planMessages([note, reply]).costs, 2);
    assert.equal(limits.planMessages([ping(1)]), limits.plan());
    assert.equal(limits.planMessages([call(1, 'search_a')]), limits.plan('search_a'));
    assert.equal(limits.planMessages([call(1, 'echo')]), limits.plan());
    const batch = limits.planMessages([ping(1), note, ping(2), reply]);
    assert.deepEqual(batch.costs, 4);
    assert.equal(batch.buckets, limits.plan().buckets);
    assert.deepEqual(limits.planMessages([ping(1), note]).costs, 2);
  });

  it('charges a tools/call sent as a notification to its tool bucket too', () => {
    const limits = compileLimits('key:a', defaults, {
      tools: { slow: { capacity: 1, refill_per_second: 0.001 } },
    });
    const noId: JsonRpcMessage = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'slow' } };
    assert.equal(limits.planMessages([noId]), limits.plan('slow'));
    assert.deepEqual(
      limits.planMessages([noId, noId]).buckets.map((b) => b.name),
      ['default', 'tool:slow'],
    );
    assert.deepEqual(limits.planMessages([noId, noId]).costs, [2, 2]);
  });

  it('plans a batch hiding several calls to a limited tool: each call costs the tool bucket', () => {
    const limits = compileLimits('key:a', defaults, {
      tools: {
        'search_*': { capacity: 10, refill_per_second: 1 },
        fetch: { capacity: 3, refill_per_second: 1 },
      },
    });
    const plan = limits.planMessages([
      call(1, 'search_a'),
      call(2, 'search_b'),
      call(3, 'fetch'),
      ping(4),
      note,
    ]);
    assert.deepEqual(
      plan.buckets.map((b) => b.name),
      ['default', 'tool:search_*', 'tool:fetch'],
    );
    assert.deepEqual(plan.costs, [5, 2, 1]);
  });

  it('keeps ids with braces from escaping their Redis hash tag', () => {
    const limits = compileLimits('oauth:x}:tool:y{', defaults, {
      tools: { t: { capacity: 1, refill_per_second: 1 } },
    });
    assert.equal(limits.bucket.key, '{oauth:x%7d:tool:y%7b}');
    assert.equal(limits.toolBucket('t')?.key, '{oauth:x%7d:tool:y%7b}:tool:t');
    assert.notEqual(compileLimits('a%7d', defaults).bucket.key, compileLimits('a}', defaults).bucket.key);
  });

  it("gives a scope (an OAuth grant with its own limits) buckets of its own, in the identity's hash tag", () => {
    const tools = { tools: { x: { capacity: 1, refill_per_second: 1 } } };
    const strict = compileLimits('oauth:i s', defaults, { capacity: 2, ...tools }, 'a');
    assert.equal(strict.id, 'oauth:i s');
    assert.equal(strict.bucket.key, '{oauth:i s}:grant:a');
    assert.equal(strict.toolBucket('x')?.key, '{oauth:i s}:grant:a:tool:x');
    assert.notEqual(strict.bucket.key, compileLimits('oauth:i s', defaults).bucket.key);
    // Grant names may hold `:`: encoded, no grant's bucket is another grant's tool bucket.
    const named = compileLimits('oauth:i s', defaults, { capacity: 9 }, 'a:tool:x');
    assert.equal(named.bucket.key, '{oauth:i s}:grant:a%3Atool%3Ax');
  });
});

describe('wildcard matching', () => {
  it('matches by example', () => {
    const cases: [string, string, boolean][] = [
      ['*', '', true],
      ['*', 'anything', true],
      ['search_*', 'search_', true],
      ['search_*', 'search_web', true],
      ['search_*', 'research_web', false],
      ['*_admin', 'db_admin', true],
      ['*_admin', 'db_admin2', false],
      ['a*b*c', 'abc', true],
      ['a*b*c', 'aXbYc', true],
      ['a*b*c', 'acb', false],
      ['ab*ba', 'aba', false],
      ['a**b', 'ab', true],
      ['exact', 'exact', true],
      ['exact', 'exactly', false],
      ['f?o', 'foo', false],
      ['f.o', 'fxo', false],
    ];
    for (const [pattern, name, expected] of cases) {
      assert.equal(compileWildcard(pattern)(name), expected, `${pattern} ~ ${name}`);
    }
  });

  it('agrees with a regular expression built from the pattern', () => {
    const alphabet = fc.constantFrom('a', 'b', '_', '.', '*');
    fc.assert(
      fc.property(
        fc.string({ unit: alphabet, maxLength: 8 }),
        fc.string({ unit: fc.constantFrom('a', 'b', '_', '.'), maxLength: 10 }),
        (pattern, name) => {
          const source = pattern
            .split('*')
            .map((p) => p.replace(/[.]/g, '\\.'))
            .join('.*');
          assert.equal(compileWildcard(pattern)(name), new RegExp(`^${source}$`, 's').test(name));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

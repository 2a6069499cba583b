/**
 * A pinned definition read by V8's JSON.parse as another (jsonrpc/key-check.ts): the lockfile's own
 * parse builds an object whose keys the upstream's entry then mirrors, but with one key spelled so
 * that JSON.parse reads it as the pinned one. Here a schema's `patternProperties` pins the regex
 * `^\\.` (four characters: a caret, two backslashes, a dot); the entry spells `"^\\.x"`, which a
 * client reads as the regex `^\.x` and the gateway's JSON.parse read as `^\\.`: the definition it
 * hashed was the pinned one, the bytes it passed on were not. Now such an entry is unreadable, so
 * hidden and reported, like any entry whose bytes a client could read otherwise.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lockfileOf, serializeLockfile } from '../../../src/pinning/lockfile.ts';
import { createPinning } from '../../../src/pinning/pins.ts';
import type { PinReport } from '../../../src/pinning/pins.ts';

describe('pinning, an entry whose key V8 misreads', () => {
  it('is unreadable, never judged as the pinned definition it is not', () => {
    // A first pattern no other test uses, so V8's memory of these keys is this test's.
    const first = `^[0-9]{${process.pid}}$`;
    const pinned = {
      name: 'grep',
      description: 'Finds files',
      inputSchema: {
        type: 'object',
        patternProperties: { [first]: { type: 'string' }, '^\\\\.': { type: 'boolean' } },
      },
    };
    const text = serializeLockfile(lockfileOf({ tools: [pinned], prompts: [] }));
    const reports: PinReport[] = [];
    const pins = createPinning(
      { lockfile: 'pins.lock', on_change: 'hide' },
      { report: (r) => void reports.push(r), readFile: () => text },
    ).forList();

    // As pinned, in the lockfile's key order: passes.
    const honest = Buffer.from(JSON.stringify(JSON.parse(text).tools.grep.definition));
    assert.equal(pins.pass('tools', 'grep', honest, 0, honest.length), true);

    const entry = Buffer.from(
      String.raw`{"description":"Finds files","inputSchema":{"patternProperties":{"${first}":{"type":"string"},"^\\.x":{"type":"boolean"}},"type":"object"},"name":"grep"}`,
    );
    // V8's JSON.parse, here as in the gateway, reads the pinned pattern (a client elsewhere: `^\.x`).
    assert.deepEqual(
      Object.keys(
        (JSON.parse(`[${entry.toString()},0]`) as [typeof pinned])[0].inputSchema.patternProperties,
      ),
      Object.keys(pinned.inputSchema.patternProperties),
      'the test must reproduce the misread',
    );
    assert.equal(pins.pass('tools', 'grep', entry, 0, entry.length), false);
    assert.deepEqual(
      reports.map((r) => [r.name, r.change]),
      [['grep', 'unreadable']],
    );
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalJson,
  changedFields,
  definitionHash,
  definitionOf,
  readEntry,
  repeatsKey,
} from '../../../src/pinning/canonical.ts';

describe('canonical definitions', () => {
  it('sorts keys at every depth and keeps array order', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } }),
      '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('hashes the same definition the same whatever its key order, spacing or escapes', () => {
    const a = readEntry(Buffer.from('{"name":"t","description":"d","inputSchema":{"type":"object"}}'))!;
    const b = readEntry(
      Buffer.from('{ "inputSchema" : {"type":"object"}, "description":"\\u0064", "name":"t" }'),
    )!;
    assert.equal(definitionHash(definitionOf(a)), definitionHash(definitionOf(b)));
  });

  it('leaves out the top-level _meta only (a schema property named _meta is pinned)', () => {
    const entry = { name: 't', _meta: { v: 1 }, inputSchema: { properties: { _meta: { type: 'string' } } } };
    assert.deepEqual(definitionOf(entry), { name: 't', inputSchema: entry.inputSchema });
    const other = { ...entry, inputSchema: { properties: { _meta: { type: 'number' } } } };
    assert.notEqual(definitionHash(definitionOf(entry)), definitionHash(definitionOf(other)));
  });

  it('pins every field, icons and unknown ones included', () => {
    const base = { name: 't', description: 'd' };
    const hash = definitionHash(base);
    assert.notEqual(definitionHash({ ...base, icons: [{ src: 'https://x/y.png' }] }), hash);
    assert.notEqual(definitionHash({ ...base, someFutureField: 'read me' }), hash);
  });

  it('names the top-level fields that changed', () => {
    assert.deepEqual(
      changedFields(
        { name: 't', description: 'a', inputSchema: { type: 'object' }, annotations: { readOnlyHint: true } },
        { name: 't', description: 'b', inputSchema: { type: 'object' }, title: 'T' },
      ),
      ['annotations', 'description', 'title'],
    );
  });

  it('security: an entry that repeats a key is unreadable (first-wins and last-wins parsers disagree)', () => {
    assert.equal(
      readEntry(Buffer.from('{"name":"t","description":"evil","description":"pinned"}')),
      undefined,
    );
    assert.equal(readEntry(Buffer.from('{"name":"t","inputSchema":{"a":1,"\\u0061":2}}')), undefined);
    assert.ok(readEntry(Buffer.from('{"name":"t","x":[{"a":1},{"a":2}],"y":{"a":1}}')));
  });

  it('refuses what a client cannot read the same way: bad UTF-8, a BOM, not an object, no name', () => {
    assert.equal(readEntry(Buffer.from([0x7b, 0x22, 0x6e, 0xff, 0x22, 0x3a, 0x31, 0x7d])), undefined);
    assert.equal(readEntry(Buffer.from('\ufeff{"name":"t"}')), undefined);
    assert.equal(readEntry(Buffer.from('["t"]')), undefined);
    assert.equal(readEntry(Buffer.from('{"title":"t"}')), undefined);
  });

  it('repeatsKey reads strings with escaped quotes and brackets correctly', () => {
    assert.equal(repeatsKey('{"a":"}\\"{","b":{"a":1},"c":["a","a"]}'), false);
    assert.equal(repeatsKey('{"a":"}\\"{","b":{"a":1,"a":2}}'), true);
  });
});

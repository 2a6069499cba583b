import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { changedFields } from '../../../src/pinning/canonical.ts';
import {
  diffLockfiles,
  LockfileError,
  lockfileOf,
  parseLockfile,
  serializeLockfile,
} from '../../../src/pinning/lockfile.ts';

const tools = [
  { name: 'search', description: 'Searches', inputSchema: { type: 'object' } },
  { name: 'echo', description: 'Echoes', inputSchema: { type: 'object' } },
];

describe('lockfile', () => {
  it('round-trips, sorted by name, with stable text', () => {
    const text = serializeLockfile(lockfileOf({ tools, prompts: [{ name: 'greeting' }] }));
    const parsed = parseLockfile(text);
    assert.deepEqual([...parsed.tools.keys()], ['echo', 'search']);
    assert.equal(serializeLockfile(parsed), text);
    assert.equal(
      serializeLockfile(lockfileOf({ tools: [...tools].reverse(), prompts: [{ name: 'greeting' }] })),
      text,
    );
    assert.match(
      text,
      /^\{\n {2}"mcpgate_lockfile": 1,\n {2}"tools": \{\n {4}"echo": \{\n {6}"sha256": "[0-9a-f]{64}",/,
    );
  });

  it('refuses a hand edit of a definition without its hash, and every other problem at once', () => {
    const doc = JSON.parse(serializeLockfile(lockfileOf({ tools, prompts: [] }))) as {
      tools: Record<string, { definition: Record<string, unknown>; sha256: string }>;
      [key: string]: unknown;
    };
    doc.tools.search!.definition.description = 'edited by hand';
    doc.tools.echo!.sha256 = 'abc';
    doc.extra = true;
    assert.throws(
      () => parseLockfile(JSON.stringify(doc)),
      (err: unknown) => {
        assert.ok(err instanceof LockfileError);
        assert.deepEqual(err.problems, [
          'extra: unknown field (expected mcpgate_lockfile, tools, prompts)',
          'tools.echo.sha256: not a lowercase hex SHA-256',
          'tools.search.sha256: is not the hash of its definition (re-run `mcpgate pin`)',
        ]);
        return true;
      },
    );
    assert.throws(() => parseLockfile('{"tools":{}}'), /mcpgate_lockfile: must be 1/);
    assert.throws(() => parseLockfile('not json'), LockfileError);
  });

  it('diffs added, changed (with fields) and removed entries', () => {
    const before = lockfileOf({ tools, prompts: [{ name: 'greeting' }] });
    const after = lockfileOf({
      tools: [{ ...tools[0]!, description: 'Searches everything' }, { name: 'new_tool' }],
      prompts: [{ name: 'greeting' }],
    });
    assert.deepEqual(diffLockfiles(before, after, changedFields), {
      added: [{ kind: 'tools', name: 'new_tool' }],
      changed: [{ kind: 'tools', name: 'search', fields: ['description'] }],
      removed: [{ kind: 'tools', name: 'echo' }],
    });
    assert.equal(diffLockfiles(undefined, before, changedFields).added.length, 3);
  });
});

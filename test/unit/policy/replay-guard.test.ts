/** GET-stream guard and unreadable events: what a rule must read but cannot is never passed on. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rewriteEventData } from '../../../src/policy/filter-list.ts';
import { guardEventData } from '../../../src/policy/replay-guard.ts';
import { UNREADABLE } from '../../../src/policy/unreadable.ts';
import { compileGrants } from '../../../src/policy/grants.ts';

const grants = compileGrants({ allow: ['echo', 'search_*'], prompts: ['greet'], resources: [] });

describe('events a rule must read but cannot', () => {
  it('are replaced by an error on a planned list stream and on a GET stream, never passed on', () => {
    // NaN is accepted by some parsers (Python's json), not by JSON.parse.
    const loose = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"rm_rf","x":NaN}]}}';
    assert.equal(rewriteEventData(loose, new Map([[1, 'tools']]), grants), UNREADABLE);
    assert.equal(guardEventData(loose, grants, undefined), UNREADABLE);
    // Data that is not a response at all passes untouched.
    assert.equal(rewriteEventData('hello', new Map([[1, 'tools']]), grants), undefined);
    assert.equal(
      guardEventData('{"jsonrpc":"2.0","method":"notifications/message"}', grants, undefined),
      undefined,
    );
  });

  it('a GET stream filters every list a replayed response carries', () => {
    const replayed = JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      result: { tools: [{ name: 'echo' }, { name: 'rm_rf' }] },
    });
    assert.deepEqual(JSON.parse(guardEventData(replayed, grants, undefined)!).result.tools, [
      { name: 'echo' },
    ]);
  });
});

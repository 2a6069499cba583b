/**
 * Updates of resources a key may not use (src/policy/hidden-updates.ts): found in a message or a
 * batch, judged as resources/read judges a URI; anything else is not an update that hides.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileGrants } from '../../../src/policy/grants.ts';
import { hidesUpdate } from '../../../src/policy/hidden-updates.ts';

const grants = compileGrants({ allow: [], prompts: [], resources: ['file:///docs/public/*'] });
const updated = (uri: unknown) => ({
  jsonrpc: '2.0',
  method: 'notifications/resources/updated',
  params: { uri },
});

describe('hidesUpdate', () => {
  it('finds an update of a resource the grants do not allow, alone or in a batch', () => {
    assert.equal(hidesUpdate(updated('file:///docs/secret.txt'), grants), true);
    assert.equal(
      hidesUpdate([{ jsonrpc: '2.0', id: 1, result: {} }, updated('file:///etc/passwd')], grants),
      true,
    );
    assert.equal(hidesUpdate(updated('file:///docs/public/../secret.txt'), grants), true, 'a dot segment');
  });

  it('passes updates of allowed resources, other notifications and messages naming no string URI', () => {
    assert.equal(hidesUpdate(updated('file:///docs/public/a.txt'), grants), false);
    assert.equal(hidesUpdate([updated('file:///docs/public/a.txt')], grants), false);
    for (const other of [
      updated(42),
      { jsonrpc: '2.0', method: 'notifications/resources/updated' },
      { jsonrpc: '2.0', method: 'notifications/resources/list_changed', params: { uri: 'file:///x' } },
      { jsonrpc: '2.0', method: 'notifications/message', params: { data: 'file:///docs/secret.txt' } },
      null,
      'text',
      [],
    ])
      assert.equal(hidesUpdate(other, grants), false, JSON.stringify(other));
  });
});

/** Request ids: a sane client id is kept; otherwise a fresh version 4 UUID, never repeated. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { randomId, requestIdFor } from '../../../src/pipeline/request-id.ts';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const req = (id?: string | string[]) =>
  ({ headers: id === undefined ? {} : { 'x-request-id': id } }) as unknown as IncomingMessage;

it('gives version 4 UUIDs, all different, across many draws of random bytes', () => {
  const seen = new Set<string>();
  // Ten draws of the pool of random bytes, and the ids around each refill.
  for (let i = 0; i < 2_560; i++) {
    const id = randomId();
    assert.match(id, UUID_V4);
    seen.add(id);
  }
  assert.equal(seen.size, 2_560);
  // Every hex digit shows up in every free position: the bytes are used, not a constant.
  const free = [...'xxxxxxxx-xxxx-_xxx-_xxx-xxxxxxxxxxxx']
    .map((c, i) => (c === 'x' ? i : -1))
    .filter((i) => i >= 0);
  for (const at of free) {
    const digits = new Set([...seen].map((id) => id[at]));
    assert.equal(digits.size, 16, `position ${at}`);
  }
});

it('takes a sane client X-Request-Id and replaces anything else', () => {
  assert.equal(requestIdFor(req('abc-123.x:y_z')), 'abc-123.x:y_z');
  for (const bad of [undefined, '', 'a b', 'x'.repeat(129), 'ü', ['a', 'b']])
    assert.match(requestIdFor(req(bad)), UUID_V4, JSON.stringify(bad));
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCursors, MAX_CURSOR_BYTES, openRequestCursors } from '../../../src/integrity/cursors.ts';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import type { ResponseAction } from '../../../src/policy/filter-list.ts';

const secret = Buffer.alloc(32, 7);
const cursors = createCursors(secret);

describe('sealed list cursors', () => {
  it("opens a seal only for the principal and the list it was made for, and hides the upstream's text", () => {
    const sealed = cursors.sealerFor('k:alice')('tools', 'after:secret_admin');
    assert.ok(sealed !== undefined && sealed.startsWith('c1.'));
    assert.ok(!Buffer.from(sealed.slice(3), 'base64url').toString('latin1').includes('secret'));
    assert.equal(cursors.open('k:alice', 'tools', sealed), 'after:secret_admin');
    assert.equal(cursors.open('k:bob', 'tools', sealed), undefined);
    assert.equal(cursors.open('k:alice', 'prompts', sealed), undefined);
    // Another replica with the same secret opens it; one with another secret does not.
    assert.equal(createCursors(Buffer.from(secret)).open('k:alice', 'tools', sealed), 'after:secret_admin');
    assert.equal(createCursors(Buffer.alloc(32, 8)).open('k:alice', 'tools', sealed), undefined);
    // Two seals of one cursor differ (a random iv): a client cannot tell two pages' cursors equal.
    assert.notEqual(cursors.sealerFor('k:alice')('tools', 'after:secret_admin'), sealed);
  });

  it('gives seals of cursors up to 254 bytes one length: a seal does not tell how long a hidden name is', () => {
    const seal = cursors.sealerFor('k:a');
    const lengths = new Set(
      ['s', 'secret_admin_rotate_all_credentials', 'x'.repeat(254)].map(
        (c) => seal('tools', `after:${c}`.slice(0, 254))?.length,
      ),
    );
    assert.equal(lengths.size, 1);
    assert.notEqual(seal('tools', 'x'.repeat(300))?.length, [...lengths][0]);
  });

  it('refuses a seal changed in any character, cut, padded or spelled another way', () => {
    const sealed = cursors.sealerFor('k:a')('tools', 'p2') as string;
    for (let i = 0; i < sealed.length; i++) {
      const c = sealed[i] === 'A' ? 'B' : 'A';
      const changed = sealed.slice(0, i) + c + sealed.slice(i + 1);
      assert.equal(cursors.open('k:a', 'tools', changed), undefined, `changed at ${i}`);
    }
    for (const bad of [sealed.slice(0, -1), `${sealed}=`, `${sealed} `, sealed.slice(3), '', 'c1.', 'p2']) {
      assert.equal(cursors.open('k:a', 'tools', bad), undefined, JSON.stringify(bad));
    }
  });

  it('seals nothing it could not give back as it was: a lone surrogate, a cursor past the bound', () => {
    const seal = cursors.sealerFor('k:a');
    assert.equal(seal('tools', 'a\ud800b'), undefined);
    assert.equal(seal('tools', 'x'.repeat(MAX_CURSOR_BYTES + 1)), undefined);
    // Counted in UTF-8 bytes, as sealed: a cursor of many multi-byte characters under the bound opens.
    const euros = '\u20ac'.repeat(Math.floor(MAX_CURSOR_BYTES / 3));
    assert.equal(cursors.open('k:a', 'tools', seal('tools', euros) as string), euros);
    assert.equal(seal('tools', `${euros}\u20ac`), undefined);
    const emoji = seal('tools', 'p\u{1f600}');
    assert.equal(cursors.open('k:a', 'tools', emoji as string), 'p\u{1f600}');
  });

  it("puts the upstream's cursor where the client's seal was, in a batch and with escapes around it", () => {
    const seal = cursors.sealerFor('k:a');
    const tools = seal('tools', 'up"1') as string;
    const prompts = seal('prompts', 'up2') as string;
    const text = `[{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"n":"\\u00e9"},"cursor":"${tools}"}},{"jsonrpc":"2.0","id":2,"method":"prompts/list","params":{"cursor":"${prompts}"}}]`;
    const parsed = parseBody(Buffer.from(text), KNOWN_METHODS);
    const plans = new Map<number, ResponseAction>([
      [1, 'tools'],
      [2, 'prompts'],
    ]);
    const out = openRequestCursors(parsed.bytes, parsed.messages, plans, 'k:a', cursors);
    const forwarded = JSON.parse(out.toString()) as { params: { cursor: string } }[];
    assert.deepEqual(
      forwarded.map((m) => m.params.cursor),
      ['up"1', 'up2'],
    );
    // Swapped lists: refused, naming the request.
    const wrong = new Map<number, ResponseAction>([
      [1, 'prompts'],
      [2, 'prompts'],
    ]);
    assert.throws(
      () => openRequestCursors(parsed.bytes, parsed.messages, wrong, 'k:a', cursors),
      (err) => isGatewayError(err) && err.code === 'ERR_INVALID_PARAMS' && err.rpcId === 1,
    );
  });

  it('leaves requests without a list plan as they are, and refuses a cursor that is not a string', () => {
    const text = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"raw"}}';
    const parsed = parseBody(Buffer.from(text), KNOWN_METHODS);
    assert.equal(openRequestCursors(parsed.bytes, parsed.messages, undefined, 'k:a', cursors), parsed.bytes);
    const number = parseBody(
      Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":5}}'),
      KNOWN_METHODS,
    );
    assert.throws(() =>
      openRequestCursors(number.bytes, number.messages, new Map([[1, 'tools']]), 'k:a', cursors),
    );
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { registerHash } from '../../../src/cli/hash.ts';
import { mintKey } from '../../../src/auth/key-format.ts';
import { fakeIo, run } from './fake-io.ts';

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const hash = (stdin: string) => run(registerHash, ['hash'], fakeIo({ stdin }));

describe('mcpgate hash', () => {
  it('prints sha256:<hex> of the key on stdin, without the trailing newline', async () => {
    const key = mintKey(randomBytes(32));
    for (const input of [key, `${key}\n`, `${key}\r\n`, `  ${key} \n`]) {
      const io = await hash(input);
      assert.equal(io.out, `sha256:${sha256(key)}\n`, JSON.stringify(input));
      assert.equal(io.err, '');
      assert.equal(io.code, 0);
    }
  });

  it('warns when an mcpg_ key fails its checksum, but still prints its hash', async () => {
    const key = mintKey(randomBytes(32));
    const typo = key.slice(0, 10) + (key[10] === 'a' ? 'b' : 'a') + key.slice(11);
    const io = await hash(`${typo}\n`);
    assert.equal(io.out, `sha256:${sha256(typo)}\n`);
    assert.match(io.err, /checksum/);
    assert.ok(!io.err.includes(typo), 'the key is never echoed');
    assert.equal(io.code, 0);
  });

  it('hashes keys minted elsewhere as-is, with no warning', async () => {
    const io = await hash('sk_live_elsewhere-123\n');
    assert.equal(io.out, `sha256:${sha256('sk_live_elsewhere-123')}\n`);
    assert.equal(io.err, '');
  });

  it('refuses empty input, several lines, and keys the gateway could never accept', async () => {
    for (const input of ['', '\n', 'a\nb\n', 'caf\u00e9', 'has space', 'x'.repeat(513)]) {
      const io = await hash(input);
      assert.equal(io.code, 1, JSON.stringify(input));
      assert.equal(io.out, '');
      assert.ok(input.trim() === '' || !io.err.includes(input.trim()), 'the input is never echoed');
    }
  });
});

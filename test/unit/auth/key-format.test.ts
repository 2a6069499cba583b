import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import {
  KEY_LENGTH,
  KEY_SCANNER_PATTERN,
  hasValidChecksum,
  isVisibleAscii,
  mintKey,
} from '../../../src/auth/key-format.ts';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Independent decoder: base62 text -> bigint. */
function decode(text: string): bigint {
  let n = 0n;
  for (const ch of text) n = n * 62n + BigInt(ALPHABET.indexOf(ch));
  return n;
}

describe('key format', () => {
  it('is mcpg_ + 43 base62 chars of the random bytes + 6 base62 chars of their CRC32', () => {
    const bytes = randomBytes(32);
    const key = mintKey(bytes);
    assert.equal(key.length, KEY_LENGTH);
    assert.equal(KEY_LENGTH, 54);
    assert.match(key, /^mcpg_[0-9A-Za-z]{49}$/);
    assert.equal(decode(key.slice(5, 48)), BigInt(`0x${bytes.toString('hex')}`));
    assert.equal(decode(key.slice(48)), BigInt(crc32(key.slice(5, 48))));
    assert.ok(hasValidChecksum(key));
  });

  it('keeps the fixed width at both ends of the range (all-zero and all-0xff bytes)', () => {
    const zero = mintKey(Buffer.alloc(32));
    assert.equal(zero.slice(0, 48), 'mcpg_' + '0'.repeat(43));
    assert.equal(zero.length, 54);
    assert.ok(hasValidChecksum(zero));
    const max = mintKey(Buffer.alloc(32, 0xff));
    assert.equal(max.length, 54);
    assert.equal(decode(max.slice(5, 48)), 2n ** 256n - 1n);
    assert.ok(hasValidChecksum(max));
  });

  it('refuses anything but exactly 32 random bytes', () => {
    assert.throws(() => mintKey(Buffer.alloc(31)), TypeError);
    assert.throws(() => mintKey(Buffer.alloc(33)), TypeError);
  });

  it('is matched by the scanner pattern, inside surrounding text', () => {
    const key = mintKey(randomBytes(32));
    const found = new RegExp(KEY_SCANNER_PATTERN, 'g').exec(`export MCP_KEY="${key}"`);
    assert.equal(found?.[0], key);
  });

  it('rejects truncated, extended, re-prefixed and look-alike keys', () => {
    const key = mintKey(randomBytes(32));
    assert.equal(hasValidChecksum(key.slice(0, -1)), false);
    assert.equal(hasValidChecksum(key + 'a'), false);
    assert.equal(hasValidChecksum('MCPG_' + key.slice(5)), false);
    assert.equal(hasValidChecksum('mcpg-' + key.slice(5)), false);
    assert.equal(hasValidChecksum(''), false);
    // The largest 6-char base62 value is beyond any CRC32.
    assert.equal(hasValidChecksum(key.slice(0, 48) + 'zzzzzz'), false);
  });

  it('detects every single-character change of one key (exhaustive over positions and characters)', () => {
    const key = mintKey(randomBytes(32));
    let tried = 0;
    for (let i = 0; i < key.length; i++) {
      for (let c = 0x20; c <= 0x7e; c++) {
        const ch = String.fromCharCode(c);
        if (ch === key[i]) continue;
        const changed = key.slice(0, i) + ch + key.slice(i + 1);
        assert.equal(hasValidChecksum(changed), false, `position ${i} -> ${JSON.stringify(ch)}`);
        tried++;
      }
    }
    assert.equal(tried, 54 * 94);
  });

  it('property: any single-character change of any valid key is detected by the checksum', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat({ max: KEY_LENGTH - 1 }),
        fc.integer({ min: 0, max: 0xffff }),
        (bytes, position, code) => {
          const key = mintKey(Buffer.from(bytes));
          const ch = String.fromCharCode(code);
          fc.pre(ch !== key[position]);
          const changed = key.slice(0, position) + ch + key.slice(position + 1);
          assert.equal(hasValidChecksum(changed), false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('property: base62 body of a random key decodes back to its bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const key = mintKey(Buffer.from(bytes));
        assert.equal(decode(key.slice(5, 48)), BigInt(`0x${Buffer.from(bytes).toString('hex')}`));
        assert.ok(hasValidChecksum(key));
      }),
      { numRuns: 300 },
    );
  });

  it('differential: the checksum test answers as the shape regex plus zlib crc32 of the body', () => {
    // The definition the one-pass check must keep (it refuses exactly what this refuses).
    const reference = (key: string) =>
      /^mcpg_[0-9A-Za-z]{49}$/.test(key) && decode(key.slice(48)) === BigInt(crc32(key.slice(5, 48)));
    /** A 54-char candidate whose last 6 chars are the base62 CRC32 of whatever body it has. */
    const withChecksum = (body: string) => {
      let n = BigInt(crc32(body));
      let check = '';
      for (let i = 0; i < 6; i++, n /= 62n) check = ALPHABET[Number(n % 62n)] + check;
      return `mcpg_${body}${check}`;
    };
    // Mostly base62, so that about one body in ten passes the shape and reaches the CRC.
    const bodyChar = fc.oneof(
      { arbitrary: fc.constantFrom(...ALPHABET), weight: 40 },
      // The neighbours of each digit range, and characters whose low byte is a base62 digit.
      {
        arbitrary: fc.constantFrom('/', ':', '@', '[', '`', '{', '\u0130', '\u0141', '\u0161', '\uff10'),
        weight: 1,
      },
      { arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), weight: 1 },
    );
    fc.assert(
      fc.property(
        fc.array(bodyChar, { minLength: 43, maxLength: 43 }),
        fc.boolean(),
        fc.nat({ max: KEY_LENGTH - 1 }),
        fc.integer({ min: 0, max: 0xffff }),
        (chars, mutate, position, code) => {
          let key = withChecksum(chars.join(''));
          if (mutate) key = key.slice(0, position) + String.fromCharCode(code) + key.slice(position + 1);
          assert.equal(hasValidChecksum(key), reference(key), JSON.stringify(key));
        },
      ),
      { numRuns: 5000 },
    );
    // Both answers on keys that pass and on lengths and prefixes around the shape.
    for (let i = 0; i < 200; i++) {
      const key = mintKey(randomBytes(32));
      for (const candidate of [
        key,
        key.slice(0, 53),
        `${key}0`,
        `Mcpg_${key.slice(5)}`,
        `mcpg${key.slice(4)}`,
      ])
        assert.equal(hasValidChecksum(candidate), reference(candidate), candidate);
    }
  });

  it('isVisibleAscii accepts 0x21-0x7e only', () => {
    assert.ok(isVisibleAscii('!~azAZ09'));
    for (const bad of ['a b', 'a\tb', 'a\x00', 'a\x7f', 'caf\u00e9', 'a\u00a0', 'a\u2028', '\u{1F511}']) {
      assert.equal(isVisibleAscii(bad), false, JSON.stringify(bad));
    }
  });
});

/**
 * The MAC of request tags (src/integrity/hmac.ts) is HMAC-SHA256 computed from precomputed padded
 * keys: it must give exactly what createHmac gives, for every input shape and truncation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createBindingMac } from '../../../src/integrity/hmac.ts';

function reference(key: Buffer, bytes: number, a: string, b: string): string {
  const full = createHmac('sha256', key).update(a).update('\n').update(b).digest();
  return full.subarray(0, bytes).toString('base64url');
}

const INPUTS: [string, string][] = [
  ['', ''],
  ['k:0123456789abcdef', 'g1nAAAAAAAA1.n42'],
  ['key-a', 'héllo ✓ 𝄞'],
  ['\ud800 lone', 'trail \udc00'],
  ['a\nb', '\n'],
  // ASCII, then a character of several bytes (written from there by the encoder).
  ['k:ab😀', 'g1nA.n1\u00e9'],
  // Around the kept views (511 message bytes) and the scratch buffer (682 UTF-16 units take it; more
  // take createHmac).
  ['x', 'y'.repeat(509)],
  ['x', 'y'.repeat(510)],
  ['x'.repeat(300), 'y'.repeat(382)],
  ['x'.repeat(300), 'y'.repeat(383)],
  ['é'.repeat(300), '✓'.repeat(382)],
  ['é'.repeat(300), '✓𝄞'.repeat(200)],
  ['k', 'z'.repeat(50_000)],
];

describe('binding MAC', () => {
  it('equals createHmac for every key length, truncation and message', () => {
    for (const keyLength of [1, 20, 32, 64]) {
      const key = Buffer.alloc(keyLength);
      for (let i = 0; i < keyLength; i++) key[i] = (i * 37 + 11) & 0xff;
      for (const bytes of [1, 12, 16, 30, 32]) {
        const mac = createBindingMac(key, bytes);
        for (const [a, b] of INPUTS) {
          const label = `key ${keyLength}, ${bytes} bytes, ${a.length}+${b.length} chars`;
          assert.equal(mac(a, b), reference(key, bytes, a, b), label);
          // The shared scratch buffers carry nothing from one call into the next.
          assert.equal(mac(a, b), reference(key, bytes, a, b), `${label}, again`);
        }
      }
    }
  });

  it('keeps the first part written across calls only while it is the same string', () => {
    const key = Buffer.alloc(32, 5);
    const mac = createBindingMac(key, 12);
    const a = `k:${'0123456789abcdef'.repeat(4)}`;
    // Same content, another string object; then a shorter and a longer first part, and a call that
    // takes createHmac in between (it must leave the kept part alone).
    const sameContent = [...a].join('');
    const sequence: [string, string][] = [
      [a, 'g1nAAAA1.n1'],
      [a, 'g1nAAAA2.n2'],
      [sameContent, 'g1nAAAA3.n3'],
      ['k:short', 'g1nAAAA4.n4'],
      [a, 'g1nAAAA5.n5'],
      [a, 'z'.repeat(5_000)],
      [a, 'g1nAAAA6.s' + 'é'.repeat(40)],
      [`${a}x`, 'g1nAAAA7.n7'],
      [a, ''],
      ['', 'g1nAAAA8.n8'],
      [a, 'g1nAAAA9.n9'],
    ];
    for (const [x, y] of sequence)
      assert.equal(mac(x, y), reference(key, 12, x, y), `${x.length}+${y.length}`);
  });

  it('changes with every part of the message and with the key', () => {
    const key = Buffer.alloc(32, 9);
    const mac = createBindingMac(key, 12);
    const base = mac('key-a', 'g1n.body');
    assert.notEqual(mac('key-b', 'g1n.body'), base);
    assert.notEqual(mac('key-a', 'g1n.bodz'), base);
    // The separator is part of the message: moving it changes the MAC.
    assert.notEqual(mac('key-a\ng1n', 'body'), base);
    assert.notEqual(createBindingMac(Buffer.alloc(32, 8), 12)('key-a', 'g1n.body'), base);
  });

  it('refuses keys and truncations it does not compute', () => {
    assert.throws(() => createBindingMac(Buffer.alloc(0), 12), TypeError);
    assert.throws(() => createBindingMac(Buffer.alloc(65), 12), TypeError);
    assert.throws(() => createBindingMac(Buffer.alloc(32), 0), TypeError);
    assert.throws(() => createBindingMac(Buffer.alloc(32), 33), TypeError);
  });
});

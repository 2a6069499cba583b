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

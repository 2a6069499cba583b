import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { createSessionBinder, sessionSecret, sessionTag } from '../../../src/auth/session-binding.ts';
import { GatewayError } from '../../../src/jsonrpc/errors.ts';

const secret = randomBytes(32);
const alice = `k:${'a'.repeat(64)}`;
const bob = `k:${'b'.repeat(64)}`;
const VISIBLE = /^[\x21-\x7e]+$/;

describe('session binding', () => {
  it('round-trips: unwrap(wrap(id)) gives the upstream id back, for the same principal', () => {
    const binder = createSessionBinder(secret);
    const upstream = randomUUID();
    const client = binder.wrap(upstream, alice);
    assert.ok(client.startsWith(`${upstream}.`));
    assert.notEqual(client, upstream);
    assert.equal(binder.unwrap(client, alice), upstream);
  });

  it('survives a restart and works on another replica: same secret, no shared state', () => {
    const client = createSessionBinder(Buffer.from(secret)).wrap('s-1', alice);
    assert.equal(createSessionBinder(Buffer.from(secret)).unwrap(client, alice), 's-1');
    assert.equal(createSessionBinder(randomBytes(32)).unwrap(client, alice), undefined);
  });

  it('security: a session opened by one key is refused to another', () => {
    const binder = createSessionBinder(secret);
    const client = binder.wrap('shared-upstream-session', alice);
    assert.equal(binder.unwrap(client, bob), undefined);
    assert.equal(binder.unwrap(client, 'anonymous'), undefined);
  });

  it('security: a bare upstream id (never wrapped) is refused', () => {
    const binder = createSessionBinder(secret);
    assert.equal(binder.unwrap(randomUUID(), alice), undefined);
  });

  it('security: moving the id to another upstream session keeps nothing valid', () => {
    const binder = createSessionBinder(secret);
    const client = binder.wrap('session-A', alice);
    const mac = client.slice(client.lastIndexOf('.') + 1);
    assert.equal(binder.unwrap(`session-B.${mac}`, alice), undefined);
  });

  it('security: ids with a "." are split at the MAC, so "a.b" and "a" do not share a MAC', () => {
    const binder = createSessionBinder(secret);
    const client = binder.wrap('a.b.c', alice);
    assert.equal(binder.unwrap(client, alice), 'a.b.c');
  });

  it('security: any single-character tampering is rejected (property)', () => {
    const binder = createSessionBinder(secret);
    fc.assert(
      fc.property(
        fc.stringMatching(/^[\x21-\x7e]{1,64}$/),
        fc.nat(),
        fc.integer({ min: 0x21, max: 0x7e }),
        (upstream, at, c) => {
          const client = binder.wrap(upstream, alice);
          const i = at % client.length;
          const ch = String.fromCharCode(c);
          fc.pre(client[i] !== ch);
          const tampered = client.slice(0, i) + ch + client.slice(i + 1);
          assert.equal(binder.unwrap(tampered, alice), undefined);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('security: a non-canonical spelling of the MAC (same decoded bytes) is rejected', () => {
    const binder = createSessionBinder(secret);
    const client = binder.wrap('s-1', alice);
    // 22 base64url chars carry 132 bits for 16 bytes: the low 4 bits of the last char are padding.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(client.at(-1) as string);
    const twin = client.slice(0, -1) + alphabet[last ^ 1];
    assert.deepEqual(Buffer.from(twin.slice(-22), 'base64url'), Buffer.from(client.slice(-22), 'base64url'));
    assert.equal(binder.unwrap(twin, alice), undefined);
  });

  it('rejects malformed client ids', () => {
    const binder = createSessionBinder(secret);
    const good = binder.wrap('s-1', alice);
    for (const bad of [
      '',
      '.',
      good.slice(1 + 's-1'.length), // MAC only
      good.slice(0, -1),
      `${good}A`,
      good.replace('.', '_'),
      `s\u00e9.${good.slice(-22)}`,
      `s 1.${good.slice(-22)}`,
      `${'x'.repeat(600)}.${good.slice(-22)}`,
    ]) {
      assert.equal(binder.unwrap(bad, alice), undefined, JSON.stringify(bad));
    }
  });

  it('yields a valid Mcp-Session-Id (visible ASCII) for any valid upstream id (property)', () => {
    const binder = createSessionBinder(secret);
    fc.assert(
      fc.property(fc.stringMatching(/^[\x21-\x7e]{1,512}$/), fc.string(), (upstream, binding) => {
        const client = binder.wrap(upstream, binding);
        assert.match(client, VISIBLE);
        assert.equal(client.length, upstream.length + 23);
        assert.equal(binder.unwrap(client, binding), upstream);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses to wrap an invalid upstream id (ERR_UPSTREAM_PROTOCOL)', () => {
    const binder = createSessionBinder(secret);
    for (const bad of ['', 'a b', 'a\nb', 'caf\u00e9', 'x'.repeat(513)]) {
      assert.throws(
        () => binder.wrap(bad, alice),
        (err: unknown) => err instanceof GatewayError && err.code === 'ERR_UPSTREAM_PROTOCOL',
      );
    }
  });

  it('needs a secret of at least 32 bytes', () => {
    assert.throws(() => createSessionBinder(randomBytes(31)), TypeError);
    assert.throws(() => createSessionBinder('x'.repeat(40) as unknown as Buffer), TypeError);
  });

  it('sessionSecret: the configured string, else 32 fresh random bytes', () => {
    assert.deepEqual(
      sessionSecret('s'.repeat(32), () => assert.fail('no randomness needed')),
      Buffer.from('s'.repeat(32)),
    );
    const random = sessionSecret(undefined, (n) => Buffer.alloc(n, 9));
    assert.deepEqual(random, Buffer.alloc(32, 9));
  });

  it('sessionTag: 12 hex chars, stable, and not the id', () => {
    const client = createSessionBinder(secret).wrap('s-1', alice);
    const tag = sessionTag(client);
    assert.match(tag, /^[0-9a-f]{12}$/);
    assert.equal(sessionTag(client), tag);
    assert.notEqual(sessionTag(`${client}x`), tag);
    assert.ok(!client.includes(tag));
  });
});

import { compileLimits } from '../../../src/ratelimit/policy.ts';
import { afterEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import crypto, { randomBytes } from 'node:crypto';
import { createKeyring } from '../../../src/auth/keyring.ts';
import type { AuthResult } from '../../../src/auth/keyring.ts';
import { mintKey } from '../../../src/auth/key-format.ts';
import { sha256Hex } from '../../../src/auth/key-hash.ts';
import { parseConfigText } from '../../../src/config/load.ts';
import type { KeyConfig } from '../../../src/config/schema.ts';
import type { Grants } from '../../../src/policy/grants.ts';

const T0 = Date.parse('2027-01-31T12:00:00Z');

/** Keys as the real config loader produces them. */
function keysFrom(entries: string): readonly KeyConfig[] {
  const { config, issues } = parseConfigText(
    `upstream: {url: "http://127.0.0.1:1/mcp"}\nkeys:\n${entries}`,
    {},
    T0,
  );
  assert.ok(config, JSON.stringify(issues));
  return config.keys;
}

const grantsFor = (key: KeyConfig): Grants => ({
  tool: (name) => key.allow.includes(name),
  prompt: () => false,
  resource: () => false,
  root: () => false,
});

const code = (r: AuthResult) => (r.ok ? 'ok' : r.code);

const alice = mintKey(randomBytes(32));
const bob = mintKey(randomBytes(32));
const legacy = 'sk_live_minted-elsewhere.1234567890';
const aliceHex = sha256Hex(alice);

function ring(now = () => T0) {
  const keys = keysFrom(
    [
      `  - {label: alice, hash: "sha256:${aliceHex}", allow: [echo]}`,
      `  - {label: bob, hash: "${sha256Hex(bob).toUpperCase()}", disabled: true}`,
      `  - {label: legacy, hash: "sha256:${sha256Hex(legacy)}", expires: "2027-01-31"}`,
    ].join('\n'),
  );
  return createKeyring(keys, grantsFor, {
    now,
    resolveLimits: (key) =>
      compileLimits(`key:${key.label}`, { capacity: 5, refill_per_second: 1, max_streams: 2 }),
  });
}

afterEach(() => mock.restoreAll());

describe('keyring', () => {
  it('authenticates a configured key and returns its principal', () => {
    const r = ring().authenticate(alice);
    assert.ok(r.ok);
    const p = r.principal;
    assert.equal(p.kind, 'key');
    assert.equal(p.name, 'alice');
    assert.equal(p.keyId, aliceHex.slice(0, 8));
    assert.equal(p.bindingId, `k:${aliceHex}`);
    assert.equal(p.limits?.id, 'key:alice');
    assert.equal(p.grants.tool('echo'), true);
    assert.equal(p.grants.tool('rm'), false);
    assert.ok(Object.isFrozen(p));
  });

  it('builds each principal once: the same object on every request', () => {
    const keyring = ring();
    const a = keyring.authenticate(alice);
    const b = keyring.authenticate(alice);
    assert.ok(a.ok && b.ok);
    assert.equal(a.principal, b.principal);
    assert.equal(keyring.size, 3);
  });

  it('accepts keys minted elsewhere, looked up as-is', () => {
    const r = ring(() => T0).authenticate(legacy);
    assert.ok(r.ok);
    assert.equal(r.principal.name, 'legacy');
  });

  it('an unknown key -> ERR_AUTH_UNKNOWN_KEY', () => {
    assert.equal(code(ring().authenticate(mintKey(randomBytes(32)))), 'ERR_AUTH_UNKNOWN_KEY');
    assert.equal(code(ring().authenticate('some-other-secret')), 'ERR_AUTH_UNKNOWN_KEY');
  });

  it('a key with one character changed -> ERR_AUTH_MALFORMED, without hashing it', () => {
    const keyring = ring();
    const hash = mock.method(crypto, 'hash');
    const i = 20;
    const typo = alice.slice(0, i) + (alice[i] === 'a' ? 'b' : 'a') + alice.slice(i + 1);
    assert.equal(code(keyring.authenticate(typo)), 'ERR_AUTH_MALFORMED');
    assert.equal(code(keyring.authenticate(alice.slice(0, -1))), 'ERR_AUTH_MALFORMED');
    assert.equal(hash.mock.callCount(), 0);
    // Control: the mock sees the one hash of a well-formed key.
    assert.equal(code(keyring.authenticate(alice)), 'ok');
    assert.equal(hash.mock.callCount(), 1);
  });

  it('a 10 KB key -> ERR_AUTH_MALFORMED before hashing; an empty one -> ERR_AUTH_EMPTY', () => {
    const keyring = ring();
    const hash = mock.method(crypto, 'hash');
    assert.equal(code(keyring.authenticate('x'.repeat(10 * 1024))), 'ERR_AUTH_MALFORMED');
    assert.equal(code(keyring.authenticate('')), 'ERR_AUTH_EMPTY');
    assert.equal(hash.mock.callCount(), 0);
  });

  it('a disabled key -> ERR_AUTH_KEY_DISABLED (configured as bare upper-case hex)', () => {
    assert.equal(code(ring().authenticate(bob)), 'ERR_AUTH_KEY_DISABLED');
  });

  it('an expired key -> ERR_AUTH_KEY_EXPIRED, by the injected clock (a date expires at the end of that day, UTC)', () => {
    let now = T0;
    const keyring = ring(() => now);
    assert.equal(code(keyring.authenticate(legacy)), 'ok');
    now = Date.parse('2027-01-31T23:59:59.999Z');
    assert.equal(code(keyring.authenticate(legacy)), 'ok');
    now = Date.parse('2027-02-01T00:00:00Z');
    assert.equal(code(keyring.authenticate(legacy)), 'ERR_AUTH_KEY_EXPIRED');
    // Identity comes first: an unknown key is not told whether some key expired.
    assert.equal(code(keyring.authenticate(`${legacy}x`)), 'ERR_AUTH_UNKNOWN_KEY');
  });

  it('confirms the match with crypto.timingSafeEqual on the two 32-byte digests', () => {
    const keyring = ring();
    const compare = mock.method(crypto, 'timingSafeEqual');
    assert.equal(code(keyring.authenticate(alice)), 'ok');
    assert.equal(compare.mock.callCount(), 1);
    const [given, stored] = compare.mock.calls[0]?.arguments as [Buffer, Buffer];
    assert.equal(given.length, 32);
    assert.equal(Buffer.from(given).toString('hex'), aliceHex);
    assert.equal(Buffer.from(stored).toString('hex'), aliceHex);
    // The answer rests on the comparison, not on the map lookup alone.
    compare.mock.mockImplementation(() => false);
    assert.equal(code(keyring.authenticate(alice)), 'ERR_AUTH_UNKNOWN_KEY');
  });

  it('refuses to start on a config that skipped validation (fail closed)', () => {
    const base = keysFrom(`  - {label: a, hash: "sha256:${aliceHex}"}`)[0] as KeyConfig;
    const opts = { now: () => T0 };
    assert.throws(() => createKeyring([{ ...base, hash: 'nope' }], grantsFor, opts), TypeError);
    assert.throws(() => createKeyring([base, { ...base, label: 'b' }], grantsFor, opts), TypeError);
    assert.throws(() => createKeyring([{ ...base, expires: 'next week' }], grantsFor, opts), TypeError);
  });

  it("gives the principal its key's expiry: the first instant the key is refused (streams end then)", () => {
    let now = T0 - 86_400_000;
    const keyring = ring(() => now);
    const r = keyring.authenticate(legacy);
    assert.ok(r.ok);
    const at = r.principal.expiresAt;
    assert.equal(typeof at, 'number');
    now = (at as number) - 1;
    assert.equal(code(keyring.authenticate(legacy)), 'ok');
    now = at as number;
    assert.equal(code(keyring.authenticate(legacy)), 'ERR_AUTH_KEY_EXPIRED');
    const never = keyring.authenticate(alice);
    assert.ok(never.ok);
    assert.equal(never.principal.expiresAt, undefined);
  });

  it('with no keys, everything is unknown', () => {
    const keyring = createKeyring([], grantsFor, { now: () => T0 });
    assert.equal(keyring.size, 0);
    assert.equal(code(keyring.authenticate(alice)), 'ERR_AUTH_UNKNOWN_KEY');
  });
});

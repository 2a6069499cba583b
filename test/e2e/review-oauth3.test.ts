/**
 * Attack review (oauth3): bearer JWTs against a hostile or failing authorization server. The JWK set
 * is served by a test server whose answer each test switches. "hole: ..." tests showed an attack
 * that worked (fixed in src/ in the same commit; "failed before" says how); "holds: ..." tests are
 * defences that no other test pinned.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CompactSign,
  exportJWK,
  FlattenedSign,
  flattenedVerify,
  generateKeyPair,
  importJWK,
  SignJWT,
} from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { startOAuthGateway } from '../helpers/auth-server.ts';
import type { Logger } from '../../src/log/types.ts';

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'oauth3', version: '1' } },
});

async function post(url: string, token: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, authorization: `Bearer ${token}` },
    body: INIT,
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

interface Key {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

async function newKey(kid: string, alg = 'RS256', options: { modulusLength?: number } = {}): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...options });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

function sign(key: Key, issuer: string, claims: JWTPayload): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: issuer,
    sub: 'subject-1',
    iat: now,
    exp: now + 300,
    scope: 'mcp:tools',
    ...claims,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .sign(key.privateKey);
}

/** A JWK set server answering whatever body `answer()` gives (a JSON value, or raw text). */
async function startJwks(answer: () => unknown) {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    const body = answer();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/jwks`,
    issuer: `${origin}/realm`,
    get hits() {
      return hits;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function recordingLog(warnings: string[]): Logger {
  const none = () => {};
  return {
    trace: none,
    debug: none,
    info: none,
    warn: (_obj, msg) => void warnings.push(msg ?? ''),
    error: none,
    fatal: none,
  };
}

/**
 * A JWK set JSON.parse reads and whose shape is right (`keys`, an array of objects), but with a
 * member nested deeper than structuredClone can copy: jose's createLocalJWKSet copies the set it is
 * given, so it refuses this one (JWKSInvalid), though the gateway's own check let it through.
 */
function deepJwkSet(keys: readonly JWK[]): string {
  const depth = 20_000;
  const keysText = keys.map((k) => JSON.stringify(k)).join(',');
  const deep = `{"kty":"RSA","kid":"deep","x5c":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  return `{"keys":[${keysText}${keysText === '' ? '' : ','}${deep}]}`;
}

// ---------------------------------------------------------------------------------------------
// 1. A JWK set the gateway's check takes but jose cannot: no failure, no cooldown, no warning.
// ---------------------------------------------------------------------------------------------
describe('a JWK set jose refuses after the gateway took it (a member nested too deep to copy)', () => {
  let known: Key;
  let stranger: Key;
  let mode: 'good' | 'deep' = 'good';
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let fromStart: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let gatewayFromStart: TestGateway;
  const warnings: string[] = [];
  const KID_COOLDOWN = 200;

  before(async () => {
    known = await newKey('k1');
    stranger = await newKey('k-stranger');
    jwks = await startJwks(() => (mode === 'good' ? { keys: [known.jwk] } : deepJwkSet([known.jwk])));
    fromStart = await startJwks(() => deepJwkSet([]));
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, jwks.issuer, jwks.url, [], {
      log: recordingLog(warnings),
      oauthTuning: { cooldownMs: KID_COOLDOWN },
    });
    gatewayFromStart = await startOAuthGateway(upstream.url, fromStart.issuer, fromStart.url, [], {
      oauthTuning: { cooldownMs: KID_COOLDOWN },
    });
  });
  after(async () => {
    await gateway.close(500);
    await gatewayFromStart.close(500);
    await upstream.close();
    await jwks.close();
    await fromStart.close();
  });

  it('hole: tokens with unknown kids each fetched such a set again (no failure cooldown), with no warning and /readyz "ok"', async () => {
    // failed before: 20 tokens made 20 fetches, nothing was warned and /readyz said "ok".
    const aud = gateway.mcpUrl;
    assert.equal((await post(aud, await sign(known, jwks.issuer, { aud }))).status, 200);
    mode = 'deep';
    await new Promise((r) => setTimeout(r, KID_COOLDOWN + 50));
    const before = jwks.hits;
    for (let i = 0; i < 20; i++) {
      const token = await sign(stranger, jwks.issuer, { aud, jti: String(i) });
      assert.equal((await post(aud, token)).status, 401);
    }
    const fetches = jwks.hits - before;
    assert.ok(fetches <= 1, `20 tokens with an unknown kid made ${fetches} JWK set fetches`);
    await waitFor(() => warnings.some((w) => /JWK set fetch failed/.test(w)), 2000, 'a warning');
    const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as { oauth: { jwks: string } };
    assert.equal(ready.oauth.jwks, 'stale');
    // The cached key still validates (an outage refuses no token whose key is cached).
    const again = await sign(known, jwks.issuer, { aud, jti: 'after' });
    assert.equal((await post(aud, again)).status, 200);
  });

  it('hole: served from the start, every bearer token (anyone’s, any kid) made a JWK set fetch', async () => {
    // failed before: 20 requests made 20 fetches of the authorization server.
    const aud = gatewayFromStart.mcpUrl;
    const before = fromStart.hits;
    for (let i = 0; i < 20; i++) {
      const token = await sign(stranger, fromStart.issuer, { aud, jti: String(i) });
      assert.equal((await post(aud, token)).status, 401);
    }
    const fetches = fromStart.hits - before;
    assert.ok(fetches <= 1, `20 requests made ${fetches} JWK set fetches`);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. What the audit line blames: the token, the keys it names, or the JWK set fetch.
// ---------------------------------------------------------------------------------------------
describe('the audit reason of a token refused for the JWK set’s fault', () => {
  let good: Key;
  let stranger: Key;
  let weak: { kid: string; privateKey: KeyObject; jwk: JWK };
  let broken: Key;
  let huge = false;
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;

  before(async () => {
    good = await newKey('k1');
    stranger = await newKey('k-stranger');
    // jose will not mint with an RSA key under 2048 bits, so node:crypto makes and signs with it.
    const pair = generateKeyPairSync('rsa', { modulusLength: 1024 });
    weak = { kid: 'k-weak', privateKey: pair.privateKey, jwk: pair.publicKey.export({ format: 'jwk' }) };
    broken = await newKey('k-broken');
    jwks = await startJwks(() =>
      huge
        ? { keys: [good.jwk], pad: 'x'.repeat(2 * 1024 * 1024) }
        : {
            keys: [
              good.jwk,
              { ...weak.jwk, kid: weak.kid, alg: 'RS256', use: 'sig' },
              // A modulus that does not import.
              { ...broken.jwk, n: 'AAAA' },
            ],
          },
    );
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, jwks.issuer, jwks.url, [], {
      oauthTuning: { cooldownMs: 0 },
    });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  const reasonOf = async (token: string) => {
    const answer = await post(gateway.mcpUrl, token);
    const id = answer.headers.get('x-request-id');
    const line = await waitFor(() => gateway.auditLines.find((l) => l.request_id === id), 2000, 'line');
    return [answer.status, line.reason];
  };

  it('hole: a token whose key is in the set but unusable (RSA under 2048 bits, a modulus that does not import) was blamed on an unreachable JWK set', async () => {
    // failed before: both were ERR_AUTH_TOKEN_KEYS_UNAVAILABLE, which says the set could not be
    // fetched (README: "its warning in the operational log says why"), though it was and no
    // warning came: jose's TypeError for the short key was read as fetch's own TypeError.
    const aud = gateway.mcpUrl;
    const claims = { iss: jwks.issuer, aud, sub: 'subject-1', exp: Math.floor(Date.now() / 1000) + 300 };
    const input = `${b64url({ alg: 'RS256', kid: weak.kid, typ: 'at+jwt' })}.${b64url(claims)}`;
    const weakToken = `${input}.${createSign('RSA-SHA256').update(input).sign(weak.privateKey).toString('base64url')}`;
    assert.deepEqual(await reasonOf(await sign(good, jwks.issuer, { aud })), [200, undefined]);
    assert.deepEqual(await reasonOf(weakToken), [401, 'ERR_AUTH_TOKEN_UNKNOWN_KEY']);
    assert.deepEqual(await reasonOf(await sign(broken, jwks.issuer, { aud })), [
      401,
      'ERR_AUTH_TOKEN_UNKNOWN_KEY',
    ]);
  });

  it('hole: the token whose unknown kid made the gateway fetch a JWK set over 1 MiB was blamed as malformed', async () => {
    // failed before: ERR_AUTH_TOKEN_MALFORMED (readCapped's plain Error fell through every mapping),
    // while the next token, refused by the failure cooldown, said ERR_AUTH_TOKEN_KEYS_UNAVAILABLE.
    huge = true;
    const aud = gateway.mcpUrl;
    assert.deepEqual(await reasonOf(await sign(stranger, jwks.issuer, { aud })), [
      401,
      'ERR_AUTH_TOKEN_KEYS_UNAVAILABLE',
    ]);
    assert.deepEqual(await reasonOf(await sign(stranger, jwks.issuer, { aud, jti: '2' })), [
      401,
      'ERR_AUTH_TOKEN_KEYS_UNAVAILABLE',
    ]);
    // The cached key still validates.
    assert.deepEqual(await reasonOf(await sign(good, jwks.issuer, { aud, jti: '3' })), [200, undefined]);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Keys of the set that must never verify a token, whoever signs it.
// ---------------------------------------------------------------------------------------------
describe('keys of the JWK set that are not signing keys for these tokens', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  const signers: Record<string, Key> = {};
  const OCT_SECRET = Buffer.from('a published oct key is no secret at all, 32+ bytes').toString('base64url');

  before(async () => {
    signers.enc = await newKey('k-enc');
    signers.ops = await newKey('k-ops');
    signers.p384 = await newKey('k-p384', 'ES384');
    jwks = await startJwks(() => ({
      keys: [
        { ...signers.enc!.jwk, use: 'enc' },
        { ...signers.ops!.jwk, use: undefined, key_ops: ['encrypt', 'wrapKey'] },
        // A P-384 key labelled ES256 (and one unlabelled, for a token that says ES256).
        { ...signers.p384!.jwk, alg: 'ES256' },
        { ...signers.p384!.jwk, kid: 'k-p384-bare', alg: undefined },
        { kty: 'oct', kid: 'k-oct', k: OCT_SECRET },
        { kty: 'oct', kid: 'k-oct-rs', alg: 'RS256', k: OCT_SECRET },
      ],
    }));
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(
      upstream.url,
      jwks.issuer,
      jwks.url,
      ['    algorithms: [RS256, ES256, ES384, PS256, EdDSA]'],
      { oauthTuning: { cooldownMs: 0 } },
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('holds: use enc, key_ops without verify, a key on another curve, oct keys (HS256 with the published k)', async () => {
    const aud = gateway.mcpUrl;
    const claims = { iss: jwks.issuer, aud, scope: 'mcp:tools' };
    const hs = (kid: string, alg: 'HS256' = 'HS256') =>
      new SignJWT({ ...claims, sub: 's', exp: Math.floor(Date.now() / 1000) + 300 })
        .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
        .sign(Buffer.from(OCT_SECRET, 'base64url'));
    const p384As256 = async (kid: string) => {
      // An ES384 signature presented as ES256 under the P-384 key's kid.
      const t = await sign({ ...signers.p384!, kid }, jwks.issuer, claims);
      const [, payload, signature] = t.split('.');
      return `${b64url({ alg: 'ES256', kid, typ: 'at+jwt' })}.${payload}.${signature}`;
    };
    const cases: [string, string][] = [
      ['use: enc', await sign(signers.enc!, jwks.issuer, claims)],
      ['key_ops without verify', await sign(signers.ops!, jwks.issuer, claims)],
      ['P-384 key labelled ES256, token ES256', await p384As256('k-p384')],
      ['P-384 key labelled ES256, token ES384', await sign(signers.p384!, jwks.issuer, claims)],
      ['P-384 key unlabelled, token ES256', await p384As256('k-p384-bare')],
      ['oct key, HS256 with its published k', await hs('k-oct')],
      ['oct key labelled RS256, HS256 with its k', await hs('k-oct-rs')],
      [
        'oct key, alg RS256 claimed, HMAC signature',
        (await hs('k-oct')).replace(/^[^.]+/, b64url({ alg: 'RS256', kid: 'k-oct' })),
      ],
    ];
    // Control: the unlabelled P-384 key verifies the ES384 token it signed.
    const control = await sign({ ...signers.p384!, kid: 'k-p384-bare' }, jwks.issuer, claims);
    assert.equal((await post(aud, control)).status, 200);
    const before = upstream.received.length;
    const got: Record<string, number> = {};
    for (const [name, token] of cases) got[name] = (await post(aud, token)).status;
    assert.deepEqual(got, Object.fromEntries(cases.map(([name]) => [name, 401])));
    assert.equal(upstream.received.length, before, 'a refused token reached the upstream');
  });
});

// ---------------------------------------------------------------------------------------------
// 4. A JWK set that hangs, and a flood of unknown kids beside a client with a good token.
// ---------------------------------------------------------------------------------------------
describe('a hanging JWK set, a flood of unknown kids, and a good token beside them', () => {
  let known: Key;
  let stranger: Key;
  let hang = false;
  let hits = 0;
  let server: Server;
  let origin: string;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  const TIMEOUT = 1500;

  before(async () => {
    known = await newKey('k1');
    stranger = await newKey('k-stranger');
    server = createServer((_req, res) => {
      hits++;
      if (hang) return; // accepted, never answered
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [known.jwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, `${origin}/realm`, `${origin}/jwks`, [], {
      oauthTuning: { cooldownMs: 0, timeoutMs: TIMEOUT },
    });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('holds: 20 concurrent unknown kids make one fetch and wait at most its timeout; the good token is not held behind it', async () => {
    const aud = gateway.mcpUrl;
    const issuer = `${origin}/realm`;
    hang = true;
    const before = hits;
    const started = Date.now();
    const flood = Array.from({ length: 20 }, async (_, i) => {
      const answer = await post(aud, await sign(stranger, issuer, { aud, jti: String(i) }));
      return [answer.status, Date.now() - started];
    });
    // Once the flood's fetch is pending, a token of the cached key.
    await waitFor(() => hits > before || undefined, 2000, 'the fetch');
    const goodAt = Date.now();
    const good = await post(aud, await sign(known, issuer, { aud }));
    const goodMs = Date.now() - goodAt;
    const results = await Promise.all(flood);
    assert.equal(good.status, 200);
    assert.ok(goodMs < TIMEOUT / 2, `the good token waited ${goodMs} ms behind the hanging fetch`);
    assert.ok(
      results.every(([status, ms]) => status === 401 && ms! < TIMEOUT + 1000),
      JSON.stringify(results),
    );
    assert.equal(hits - before, 1, 'fetches');
  });
});

// ---------------------------------------------------------------------------------------------
// 5. The wall clock stepping back (NTP correcting a fast clock) after a failed JWK set fetch.
// ---------------------------------------------------------------------------------------------
describe('the wall clock steps back an hour after a failed JWK set fetch', () => {
  let key: Key;
  let failing = true;
  let offset = 0;
  let server: Server;
  let origin: string;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  const COOLDOWN = 300;

  before(async () => {
    key = await newKey('k1');
    server = createServer((_req, res) => {
      if (failing) return void res.writeHead(500).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [key.jwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, `${origin}/realm`, `${origin}/jwks`, [], {
      oauthTuning: { failureCooldownMs: COOLDOWN },
      clock: { now: () => Date.now() + offset, mono: () => performance.now() },
    });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('hole: no JWK set was fetched again until the wall clock was back where the failure was (an hour of refused tokens)', async () => {
    // failed before: 401 ERR_AUTH_TOKEN_KEYS_UNAVAILABLE ("fetch failed recently"): the failure
    // cooldown, a duration, was measured on the wall clock, now an hour before the failure.
    offset = -3_600_000;
    failing = false;
    await new Promise((r) => setTimeout(r, COOLDOWN + 100));
    const aud = gateway.mcpUrl;
    const iat = Math.floor((Date.now() + offset) / 1000);
    const token = await sign(key, `${origin}/realm`, { aud, iat, exp: iat + 300 });
    const answer = await post(aud, token);
    const id = answer.headers.get('x-request-id');
    const line = await waitFor(() => gateway.auditLines.find((l) => l.request_id === id), 2000, 'line');
    assert.deepEqual([answer.status, line.reason], [200, undefined]);
  });
});

// ---------------------------------------------------------------------------------------------
// 5b. The wall clock stepping back while a verified token is remembered.
// ---------------------------------------------------------------------------------------------
describe('the wall clock steps back while a verified token is remembered', () => {
  let k1: Key;
  let k2: Key;
  let published: Key[];
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let issuer: string;
  let wall = 0;
  let mono = 0;
  let upstream: SdkUpstream;
  let gateway: TestGateway;

  before(async () => {
    k1 = await newKey('k1');
    k2 = await newKey('k2');
    published = [k1];
    jwks = await startJwks(() => ({ keys: published.map((k) => k.jwk) }));
    issuer = `http://localhost:${new URL(jwks.url).port}/realm`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, issuer, jwks.url, [], {
      // The set is fetched again every 100 ms, so a key taken out of it is soon gone from the cache.
      oauthTuning: { refreshMs: 100, cooldownMs: 0 },
      clock: { now: () => Date.now() + wall, mono: () => performance.now() + mono },
    });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('hole: a token whose key left the JWK set was still accepted after a 60 s step back of the wall clock', async () => {
    // failed before: 200. The remembered token was good until its verification time + 30 s on the
    // wall clock, which the step back put a minute further away: a key taken out of the set (a
    // compromised key rotated out) went on validating its tokens for as long as the step.
    const iat = Math.floor(Date.now() / 1000) - 120;
    const token = await sign(k1, issuer, { aud: gateway.mcpUrl, iat, exp: iat + 3600 });
    assert.equal((await post(gateway.mcpUrl, token)).status, 200);
    published = [k2];
    await new Promise((r) => setTimeout(r, 400));
    wall = -60_000;
    mono = 31_000;
    const answer = await post(gateway.mcpUrl, token);
    assert.equal(answer.status, 401, answer.body);
    // A token of the key still published is accepted on the stepped clock.
    const fresh = await sign(k2, issuer, { aud: gateway.mcpUrl, iat: iat - 60, exp: iat + 3600 });
    assert.equal((await post(gateway.mcpUrl, fresh)).status, 200);
  });
});

// ---------------------------------------------------------------------------------------------
// 5c. The wall clock stepping back after a JWK set was loaded, then a key rotation.
// ---------------------------------------------------------------------------------------------
describe('the wall clock steps back an hour after the JWK set was loaded, then a key is published', () => {
  let k1: Key;
  let k2: Key;
  let published: Key[];
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let issuer: string;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  const COOLDOWN = 200;

  before(async () => {
    k1 = await newKey('k1');
    k2 = await newKey('k2');
    published = [k1];
    jwks = await startJwks(() => ({ keys: published.map((k) => k.jwk) }));
    issuer = `http://localhost:${new URL(jwks.url).port}/realm`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, issuer, jwks.url, [], {
      oauthTuning: { cooldownMs: COOLDOWN },
      // Read at each call, so the step below reaches the gateway's wall clock as it reaches jose's.
      clock: { now: () => Date.now(), mono: () => performance.now() },
    });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('hole: a newly published key was refused until the wall clock was back past the last load failed before: 401', async (t) => {
    // failed before: 401. jose timed its unknown-kid cooldown on the wall clock from the last load,
    // so with the clock an hour back it was still "cooling down": the token of the key just published
    // was refused, and every other token of it, until the background refresh (10 minutes).
    const first = await sign(k1, issuer, { aud: gateway.mcpUrl });
    assert.equal((await post(gateway.mcpUrl, first)).status, 200);
    const real = Date.now.bind(Date);
    t.mock.method(Date, 'now', () => real() - 3_600_000);
    published = [k1, k2];
    await new Promise((r) => setTimeout(r, COOLDOWN + 100));
    const iat = Math.floor(Date.now() / 1000) - 60;
    const rotated = await sign(k2, issuer, { aud: gateway.mcpUrl, iat, exp: iat + 600 });
    const answer = await post(gateway.mcpUrl, rotated);
    assert.equal(answer.status, 200, answer.body);
  });
});

// ---------------------------------------------------------------------------------------------
// 6. Token forms signed by the real key that are still no access token.
// ---------------------------------------------------------------------------------------------
describe('token forms signed by the published key that must still be refused', () => {
  let key: Key;
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  // No dot in iss or aud, so an unencoded (b64: false) payload still makes a three-part token.
  const AUD = 'urn:mcpgate:oauth3';
  let issuer: string;

  before(async () => {
    key = await newKey('k1');
    jwks = await startJwks(() => ({ keys: [key.jwk] }));
    issuer = `http://localhost:${new URL(jwks.url).port}/realm`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, issuer, jwks.url, [`    audience: "${AUD}"`]);
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('holds: an unencoded payload (b64: false), a nested JWT (cty: JWT), a JWE-shaped token, each refused', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: issuer, aud: AUD, sub: 's', exp: now + 300, scope: 'mcp:tools' };
    const control = await sign(key, issuer, { aud: AUD });
    const raw = JSON.stringify(claims);
    assert.ok(!raw.includes('.'));
    const flat = await new FlattenedSign(new TextEncoder().encode(raw))
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', b64: false, crit: ['b64'] })
      .sign(key.privateKey);
    const unencoded = `${flat.protected}.${raw}.${flat.signature}`;
    // A good signature (over the raw payload): what refuses it is the rule that a JWT is encoded.
    await flattenedVerify({ ...flat, payload: raw }, await importJWK(key.jwk, 'RS256'));
    assert.equal(unencoded.split('.').length, 3);
    const nested = await new CompactSign(new TextEncoder().encode(control))
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', cty: 'JWT', typ: 'at+jwt' })
      .sign(key.privateKey);
    const [h, p, s] = control.split('.');
    const cases: [string, string, number][] = [
      ['control', control, 200],
      ['b64: false, crit b64, signed by the published key', unencoded, 401],
      ['cty JWT around a good token', nested, 401],
      ['five parts (JWE-shaped) around a good token', `${h}..${p}.${s}.${b64url('tag')}`, 401],
    ];
    const got: Record<string, [number, unknown]> = {};
    for (const [name, token] of cases) {
      const answer = await post(gateway.mcpUrl, token);
      const id = answer.headers.get('x-request-id');
      const line = await waitFor(() => gateway.auditLines.find((l) => l.request_id === id), 2000, 'line');
      got[name] = [answer.status, line.reason];
    }
    assert.deepEqual(got, {
      control: [200, undefined],
      'b64: false, crit b64, signed by the published key': [401, 'ERR_AUTH_TOKEN_MALFORMED'],
      'cty JWT around a good token': [401, 'ERR_AUTH_TOKEN_MALFORMED'],
      'five parts (JWE-shaped) around a good token': [401, 'ERR_AUTH_TOKEN_MALFORMED'],
    });
  });
});

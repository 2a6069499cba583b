/**
 * Hands-on attack review of the OAuth resource server: real tokens, a real JWK set over HTTP, real
 * requests. "holds: ..." tests are attacks the gateway withstands that no other test covered;
 * "hole: ..." tests showed an attack that worked (each is fixed in src/ in the same commit).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, rawHttp, waitFor } from '../helpers/net.ts';
import { oauthGatewayConfig, startAuthServer, startOAuthGateway } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { createLogger } from '../../src/log/logger.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { compileClaimGrants, matchGrant } from '../../src/auth/oauth/claim-grants.ts';
import { discoverJwksUri } from '../../src/auth/oauth/discovery.ts';
import { createVerifier } from '../../src/auth/oauth/verify.ts';
import type { GrantConfig } from '../../src/config/schema.ts';

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'rv', version: '1' } },
});
const nowS = () => Math.floor(Date.now() / 1000);

async function post(url: string, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body: INIT });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

interface Key {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
  readonly privateJwk: JWK;
}

async function newKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return {
    kid,
    alg,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' },
  };
}

function signWith(
  key: Key,
  claims: JWTPayload,
  header: Record<string, unknown> = {},
  crit?: Record<string, boolean>,
): Promise<string> {
  const t = nowS();
  const body: JWTPayload = { sub: 'subject-1', iat: t, exp: t + 300, ...claims };
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
  return new SignJWT(body)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })
    .sign(key.privateKey, crit ? { crit } : undefined);
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Every operational log line (trace and up), as written. */
function capturingLog() {
  const lines: string[] = [];
  const log = createLogger({ level: 'trace', destination: { write: (l: string) => void lines.push(l) } });
  return { log, lines };
}

/** A session opened with `token` and its GET stream, read until it ends. */
async function openStream(mcpUrl: string, token: string) {
  const auth = { authorization: `Bearer ${token}` };
  const init = await post(mcpUrl, auth);
  assert.equal(init.status, 200, init.body);
  const common = {
    ...auth,
    'mcp-session-id': init.headers.get('mcp-session-id')!,
    'mcp-protocol-version': '2025-06-18',
  };
  await fetch(mcpUrl, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...common },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  }).then((r) => r.text());
  const controller = new AbortController();
  const stream = await fetch(mcpUrl, {
    headers: { accept: 'text/event-stream', ...common },
    signal: controller.signal,
  });
  assert.equal(stream.status, 200);
  let ended = false;
  const reader = stream.body!.getReader();
  const done = (async () => {
    for (;;) {
      const { done: finished } = await reader.read().catch(() => ({ done: true }));
      if (finished) break;
    }
    ended = true;
  })();
  return { ended: () => ended, done, close: () => controller.abort() };
}

/** The parts of a token long enough to recognise anywhere: its three segments and the whole. */
function tokenParts(token: string): string[] {
  return [token, ...token.split('.')].filter((p) => p.length >= 16);
}

// ---------------------------------------------------------------------------------------------
// 1. Token validation, credential placement, and (6) what the logs say about each refused token.
// ---------------------------------------------------------------------------------------------
describe('attacks on token validation and credential placement (and the logs of each)', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let attacker: Key;
  let attackerEc: Key;
  let attackerServer: Server;
  let attackerUrl: string;
  let attackerHits = 0;
  const logged = capturingLog();
  const presented: string[] = [];

  before(async () => {
    as = await startAuthServer();
    attacker = await newKey('k-attacker');
    attackerEc = await newKey('k1', 'ES256');
    attackerServer = createServer((_req, res) => {
      attackerHits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [attacker.jwk, attackerEc.jwk] }));
    });
    await new Promise<void>((r) => attackerServer.listen(0, '127.0.0.1', r));
    attackerUrl = `http://127.0.0.1:${(attackerServer.address() as AddressInfo).port}/jwks`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(
      upstream.url,
      as.issuer,
      as.jwksUri,
      ['    required_scopes: [mcp:tools]', 'rate_limit:', '  capacity: 1000', '  refill_per_second: 1000'],
      // No unknown-kid cooldown: an unknown kid refetches the set, so an outage reaches the log.
      { log: logged.log, oauthTuning: { cooldownMs: 0 } },
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await as.close();
    attackerServer.closeAllConnections();
    await new Promise<void>((r) => attackerServer.close(() => r()));
  });

  const auditFor = (answer: { headers: Headers | Record<string, unknown> }) => {
    const id =
      answer.headers instanceof Headers
        ? answer.headers.get('x-request-id')
        : (answer.headers['x-request-id'] as string);
    return waitFor(() => gateway.auditLines.find((l) => l.request_id === id), 2000, 'audit line');
  };

  /** Signs with the authorization server's published key k1 (RS256), iss and a good aud. */
  const good = (claims: JWTPayload = {}, header?: Record<string, unknown>) =>
    as.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools', ...claims }, { header });

  it('holds: alg confusion, foreign key headers, typ, aud, the skew edges and odd claims', async () => {
    const aud = gateway.mcpUrl;
    const base = { iss: as.issuer, aud, scope: 'mcp:tools' };
    const t = nowS();
    // HS256 keyed with the published JWK (as JSON, and its modulus), the other key-confusion spellings.
    const jwks = (await (await fetch(as.jwksUri)).json()) as { keys: JWK[] };
    const pub = jwks.keys[0]!;
    const hs = (secret: string) =>
      new SignJWT({ ...base, sub: 's', iat: t, exp: t + 300 })
        .setProtectedHeader({ alg: 'HS256', kid: 'k1', typ: 'at+jwt' })
        .sign(new TextEncoder().encode(secret));
    const none = `${b64url({ alg: 'none', kid: 'k1', typ: 'at+jwt' })}.${b64url({ ...base, sub: 's', iat: t, exp: t + 300 })}.`;
    const noneUpper = `${b64url({ alg: 'NONE', kid: 'k1' })}.${b64url({ ...base, sub: 's', iat: t, exp: t + 300 })}.`;
    const cases: [string, string, number, string | undefined][] = [
      // [name, token, status, audit reason]
      ['control: a good token', await good(), 200, undefined],
      ['alg none', none, 401, 'ERR_AUTH_TOKEN_ALGORITHM'],
      ['alg NONE', noneUpper, 401, 'ERR_AUTH_TOKEN_ALGORITHM'],
      [
        'HS256 keyed with the public JWK JSON',
        await hs(JSON.stringify(pub)),
        401,
        'ERR_AUTH_TOKEN_ALGORITHM',
      ],
      ['HS256 keyed with the modulus', await hs(pub.n!), 401, 'ERR_AUTH_TOKEN_ALGORITHM'],
      ['HS256 keyed with the PEM', await as.hmacWithPublicKey(base), 401, 'ERR_AUTH_TOKEN_ALGORITHM'],
      ['ES256 under the RSA kid k1', await signWith(attackerEc, base), 401, 'ERR_AUTH_TOKEN_UNKNOWN_KEY'],
      [
        'x5u to the attacker keys',
        await signWith(attacker, base, { x5u: attackerUrl }),
        401,
        'ERR_AUTH_TOKEN_UNKNOWN_KEY',
      ],
      [
        'jku + jwk + kid k1, attacker-signed',
        await signWith({ ...attacker, kid: 'k1' }, base, {
          jku: attackerUrl,
          jwk: { kty: 'RSA', n: attacker.jwk.n, e: attacker.jwk.e },
        }),
        401,
        'ERR_AUTH_TOKEN_SIGNATURE',
      ],
      ['kid missing (the one RSA key is used)', await good({}, { kid: undefined }), 200, undefined],
      ['typ JWT', await good({}, { typ: 'JWT' }), 200, undefined],
      ['typ AT+JWT', await good({}, { typ: 'AT+JWT' }), 200, undefined],
      ['typ application/at+jwt', await good({}, { typ: 'application/at+jwt' }), 200, undefined],
      ['typ dpop+jwt', await good({}, { typ: 'dpop+jwt' }), 401, 'ERR_AUTH_TOKEN_CLAIMS'],
      ['typ logout+jwt', await good({}, { typ: 'logout+jwt' }), 401, 'ERR_AUTH_TOKEN_CLAIMS'],
      [
        'aud array with the resource among others',
        await good({ aud: ['https://other.example', aud] }),
        200,
        undefined,
      ],
      [
        'aud only the origin (a prefix)',
        await good({ aud: new URL(aud).origin }),
        401,
        'ERR_AUTH_TOKEN_AUDIENCE',
      ],
      ['aud with a trailing slash', await good({ aud: `${aud}/` }), 401, 'ERR_AUTH_TOKEN_AUDIENCE'],
      ['aud a longer path', await good({ aud: `${aud}/x` }), 401, 'ERR_AUTH_TOKEN_AUDIENCE'],
      [
        'aud upper-case path',
        await good({ aud: aud.replace('/mcp', '/MCP') }),
        401,
        'ERR_AUTH_TOKEN_AUDIENCE',
      ],
      [
        'aud array of arrays',
        await good({ aud: [[aud]] as unknown as string[] }),
        401,
        'ERR_AUTH_TOKEN_AUDIENCE',
      ],
      ['aud missing', await good({ aud: undefined }), 401, 'ERR_AUTH_TOKEN_AUDIENCE'],
      [
        'aud the issuer (an ID-token-like aud)',
        await good({ aud: as.issuer }),
        401,
        'ERR_AUTH_TOKEN_AUDIENCE',
      ],
      ['exp 25 s ago (inside 30 s skew)', await good({ exp: t - 25 }), 200, undefined],
      ['exp 35 s ago', await good({ exp: t - 35 }), 401, 'ERR_AUTH_TOKEN_EXPIRED'],
      ['exp missing', await good({ exp: undefined }), 401, 'ERR_AUTH_TOKEN_CLAIMS'],
      [
        'exp a string',
        await good({ exp: String(t + 300) as unknown as number }),
        401,
        'ERR_AUTH_TOKEN_CLAIMS',
      ],
      ['nbf in 25 s', await good({ nbf: t + 25 }), 200, undefined],
      ['nbf in 35 s', await good({ nbf: t + 35 }), 401, 'ERR_AUTH_TOKEN_NOT_YET_VALID'],
      ['iat in 25 s', await good({ iat: t + 25 }), 200, undefined],
      ['iat in 35 s', await good({ iat: t + 35 }), 401, 'ERR_AUTH_TOKEN_NOT_YET_VALID'],
      ['iat a string', await good({ iat: 'now' as unknown as number }), 401, 'ERR_AUTH_TOKEN_CLAIMS'],
      ['sub missing', await good({ sub: undefined }), 401, 'ERR_AUTH_TOKEN_CLAIMS'],
      [
        'required scope only as a substring',
        await good({ scope: 'mcp:toolsx xmcp:tools' }),
        403,
        'ERR_INSUFFICIENT_SCOPE',
      ],
      ['required scope in another case', await good({ scope: 'MCP:TOOLS' }), 403, 'ERR_INSUFFICIENT_SCOPE'],
      ['required scope tab-joined', await good({ scope: 'read\tmcp:tools' }), 403, 'ERR_INSUFFICIENT_SCOPE'],
      ['required scope comma-joined', await good({ scope: 'read,mcp:tools' }), 403, 'ERR_INSUFFICIENT_SCOPE'],
      ['scope as a number', await good({ scope: 7 as unknown as string }), 403, 'ERR_INSUFFICIENT_SCOPE'],
      [
        'scope as an object',
        await good({ scope: { 'mcp:tools': true } as unknown as string }),
        403,
        'ERR_INSUFFICIENT_SCOPE',
      ],
      [
        'scp nested array',
        await good({ scope: undefined, scp: [['mcp:tools']] }),
        403,
        'ERR_INSUFFICIENT_SCOPE',
      ],
      ['scp as an array (Okta)', await good({ scope: undefined, scp: ['mcp:tools'] }), 200, undefined],
      ['an unpublished key', await as.signUnpublished(base), 401, 'ERR_AUTH_TOKEN_UNKNOWN_KEY'],
      ['signature cut off', (await good()).replace(/\.[^.]+$/, '.'), 401, 'ERR_AUTH_TOKEN_SIGNATURE'],
      [
        'payload swapped, signature kept',
        (await good()).replace(/\.[^.]+\./, `.${b64url({ ...base, sub: 'admin', exp: t + 300 })}.`),
        401,
        'ERR_AUTH_TOKEN_SIGNATURE',
      ],
    ];
    const before = upstream.received.length;
    let allowed = 0;
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const [name, token, status, reason] of cases) {
      presented.push(token);
      const answer = await post(aud, { authorization: `Bearer ${token}` });
      const line = await auditFor(answer);
      got[name] = [answer.status, status === 200 ? undefined : line.reason];
      want[name] = [status, reason ?? (status === 200 ? undefined : line.reason)];
      if (answer.status === 200) allowed++;
      if (answer.status === 401)
        assert.match(answer.headers.get('www-authenticate') ?? '', /error="invalid_token"/, name);
      if (answer.status === 403)
        assert.match(answer.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/, name);
    }
    assert.deepEqual(got, want);
    assert.equal(upstream.received.length - before, allowed, 'only accepted tokens reached the upstream');
    assert.equal(attackerHits, 0, 'the gateway fetched keys from an x5u or jku');
  });

  it('holds: credential placement (query, cookie, two headers, scheme spellings, length)', async () => {
    const aud = gateway.mcpUrl;
    const token = await good();
    presented.push(token);
    const long = await good({ pad: 'x'.repeat(9000) });
    presented.push(long);
    const cases: [string, string, string[], number, string | undefined][] = [
      ['bearer lower-case', aud, ['Authorization', `bearer ${token}`], 200, undefined],
      ['BEARER upper-case', aud, ['Authorization', `BEARER ${token}`], 200, undefined],
      ['Bearer + tab', aud, ['Authorization', `Bearer\t${token}`], 200, undefined],
      ['Bearer + two spaces', aud, ['Authorization', `Bearer  ${token}`], 200, undefined],
      ['no space after Bearer', aud, ['Authorization', `Bearer${token}`], 401, 'ERR_AUTH_MALFORMED'],
      ['no scheme', aud, ['Authorization', token], 401, 'ERR_AUTH_MALFORMED'],
      ['DPoP scheme', aud, ['Authorization', `DPoP ${token}`], 401, 'ERR_AUTH_MALFORMED'],
      [
        'two tokens in one header',
        aud,
        ['Authorization', `Bearer ${token}, Bearer ${token}`],
        401,
        'ERR_AUTH_MALFORMED',
      ],
      [
        'two Authorization headers',
        aud,
        ['Authorization', `Bearer ${token}`, 'authorization', `Bearer ${token}`],
        401,
        'ERR_AUTH_DUPLICATE',
      ],
      [
        'cookie only',
        aud,
        ['Cookie', `access_token=${token}; Authorization=Bearer ${token}`],
        401,
        'ERR_AUTH_MISSING',
      ],
      ['query access_token', `${aud}?access_token=${token}`, [], 401, undefined],
      ['form-style query', `${aud}?x=1&token=${token}`, [], 401, undefined],
      ['over 8 KiB', aud, ['Authorization', `Bearer ${long}`], 401, 'ERR_AUTH_MALFORMED'],
    ];
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const [name, url, headers, status, reason] of cases) {
      const answer = await rawHttp(
        url,
        'POST',
        ['Content-Type', 'application/json', 'Accept', 'application/json, text/event-stream', ...headers],
        INIT,
      );
      const line = await auditFor(answer);
      got[name] = [answer.status, status === 200 ? undefined : line.reason];
      want[name] = [status, reason ?? (status === 200 ? undefined : line.reason)];
      if (status === 401)
        assert.match(String(answer.headers['www-authenticate']), /resource_metadata=/, name);
    }
    assert.deepEqual(got, want);
  });

  it('holds: GET and DELETE without or with a bad token get the same 401 challenge as a POST', async () => {
    const bad = await good({ aud: 'https://other.example/mcp' });
    presented.push(bad);
    for (const method of ['GET', 'DELETE'])
      for (const headers of [[], ['Authorization', `Bearer ${bad}`]]) {
        const answer = await rawHttp(gateway.mcpUrl, method, ['Accept', 'text/event-stream', ...headers]);
        assert.equal(answer.status, 401, `${method} ${headers.length}`);
        const challenge = String(answer.headers['www-authenticate']);
        assert.match(
          challenge,
          /^Bearer resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"/,
        );
        assert.equal(challenge.includes('invalid_token'), headers.length > 0, `${method}: ${challenge}`);
      }
  });

  it('holds: no token, nor any segment of one, in an audit line or the operational log', async () => {
    // A JWT as the request id, user agent and JSON-RPC id too, on a refused request.
    const token = await good({ exp: nowS() - 600 });
    presented.push(token);
    await rawHttp(
      gateway.mcpUrl,
      'POST',
      [
        'Content-Type',
        'application/json',
        'Accept',
        'application/json, text/event-stream',
        'Authorization',
        `Bearer ${token}`,
        'X-Request-Id',
        token,
        'User-Agent',
        token,
      ],
      INIT.replace('"id":1', `"id":"${token}"`),
    );
    // The authorization server down: an unknown kid is refused with a warning in the log.
    as.setDown(true);
    const unknown = await signWith(attacker, { iss: as.issuer, aud: gateway.mcpUrl, scope: 'mcp:tools' });
    presented.push(unknown);
    const answer = await post(gateway.mcpUrl, { authorization: `Bearer ${unknown}` });
    as.setDown(false);
    assert.equal(answer.status, 401);
    await waitFor(() => logged.lines.some((l) => l.includes('JWK set fetch failed')), 5000, 'warning');
    const text = JSON.stringify(gateway.auditLines) + logged.lines.join('');
    for (const t of presented)
      for (const part of tokenParts(t))
        assert.ok(!text.includes(part), `a token part was written: ${part.slice(0, 24)}…`);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The JWK set: odd members, redirects, and discovery.
// ---------------------------------------------------------------------------------------------
describe('attacks on the JWK set', () => {
  let rsa: Key;
  let ec: Key;
  let dupA: Key;
  let dupB: Key;
  let leaked: Key;
  let attacker: Key;
  let server: Server;
  let origin: string;
  let attackerHits = 0;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let redirected: TestGateway;

  before(async () => {
    rsa = await newKey('k1');
    ec = await newKey('k1', 'ES256');
    dupA = await newKey('kd');
    dupB = await newKey('kd');
    leaked = await newKey('kp');
    attacker = await newKey('ka');
    server = createServer((req, res) => {
      const json = (body: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.url === '/jwks')
        return json({ keys: [rsa.jwk, ec.jwk, dupA.jwk, dupB.jwk, leaked.privateJwk] });
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/attacker' });
        return res.end();
      }
      if (req.url === '/attacker') {
        attackerHits++;
        return json({ keys: [attacker.jwk] });
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, `${origin}/realm`, `${origin}/jwks`);
    redirected = await startOAuthGateway(upstream.url, `${origin}/realm`, `${origin}/redirect`);
  });
  after(async () => {
    await gateway.close(500);
    await redirected.close(500);
    await upstream.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('holds: same kid for an RSA and an EC key, a duplicated kid, a private key in the set', async () => {
    const claims = (g: TestGateway) => ({ iss: `${origin}/realm`, aud: g.mcpUrl, scope: 'mcp:tools' });
    const cases: [string, string, number][] = [
      ['RS256, kid k1', await signWith(rsa, claims(gateway)), 200],
      ['ES256, kid k1 (the EC key of the same kid)', await signWith(ec, claims(gateway)), 200],
      [
        'ES256 under kid k1 signed by the RSA key (alg swapped)',
        await signWith({ ...rsa, alg: 'ES256' } as Key, claims(gateway)).catch(() => 'x.y.z'),
        401,
      ],
      ['kid kd shared by two keys, either signer', await signWith(dupA, claims(gateway)), 401],
      ['kid kd, the other signer', await signWith(dupB, claims(gateway)), 401],
      ['no kid, two RSA keys match', await signWith(rsa, claims(gateway), { kid: undefined }), 401],
      ['kid kp, whose JWK is a private key', await signWith(leaked, claims(gateway)), 401],
    ];
    const got: Record<string, number> = {};
    for (const [name, token] of cases)
      got[name] = (await post(gateway.mcpUrl, { authorization: `Bearer ${token}` })).status;
    assert.deepEqual(got, Object.fromEntries(cases.map(([n, , s]) => [n, s])));
  });

  it('holds: a JWK set URL that redirects is not followed (no keys from the redirect target)', async () => {
    const token = await signWith(attacker, {
      iss: `${origin}/realm`,
      aud: redirected.mcpUrl,
      scope: 'mcp:tools',
    });
    const answer = await post(redirected.mcpUrl, { authorization: `Bearer ${token}` });
    assert.equal(answer.status, 401);
    assert.equal(attackerHits, 0);
    const ready = (await (await fetch(`${redirected.url}/readyz`)).json()) as { oauth?: { jwks?: string } };
    assert.equal(ready.oauth?.jwks, 'unavailable');
  });
});

// ---------------------------------------------------------------------------------------------
// 2b. Discovery: an https issuer whose document names a cleartext jwks_uri.
// ---------------------------------------------------------------------------------------------
describe('attacks on discovery', () => {
  const doc = (issuer: string, jwksUri: string) => (url: string) => {
    void url;
    return Promise.resolve(
      new Response(JSON.stringify({ issuer, jwks_uri: jwksUri }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      }),
    );
  };

  it('hole: an https issuer whose discovery document names an http jwks_uri is refused (no keys over cleartext)', async () => {
    const issuer = 'https://auth.example.com/realms/main';
    await assert.rejects(
      discoverJwksUri(issuer, {
        fetch: doc(issuer, 'http://auth.example.com/realms/main/certs'),
        timeoutMs: 1000,
      }),
      /jwks_uri/,
    );
  });

  it('failed before: a discovered jwks_uri is held to the check a configured one passes (no credentials, which the log would show; no fragment; http(s))', async () => {
    const issuer = 'https://auth.example.com/realms/main';
    for (const jwksUri of [
      'https://reader:s3cret@auth.example.com/realms/main/certs',
      'https://auth.example.com/realms/main/certs#keys',
      'ftp://auth.example.com/certs',
      'not a url',
    ])
      await assert.rejects(
        discoverJwksUri(issuer, { fetch: doc(issuer, jwksUri), timeoutMs: 1000 }),
        /jwks_uri (must|must not)/,
        jwksUri,
      );
    assert.equal(
      await discoverJwksUri(issuer, {
        fetch: doc(issuer, 'https://keys.example.net/certs'),
        timeoutMs: 1000,
      }),
      'https://keys.example.net/certs',
    );
  });

  it('hole: a discovery document is read only up to a cap, not whole (a huge or endless answer fails)', async () => {
    const issuer = 'https://auth.example.com';
    let pulled = 0;
    const huge = () =>
      Promise.resolve(
        new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              pulled += 64 * 1024;
              if (pulled > 64 * 1024 * 1024) return controller.close();
              controller.enqueue(new Uint8Array(64 * 1024).fill(0x20));
            },
          }),
          { status: 200, headers: { 'content-type': 'application/json' } },
        ),
      );
    await assert.rejects(discoverJwksUri(issuer, { fetch: huge, timeoutMs: 5000 }));
    assert.ok(pulled <= 2 * 2 * 1024 * 1024, `read ${pulled} bytes of the discovery answers`);
  });

  it('holds: an https issuer may name an https jwks_uri on another origin (Google does); an http issuer, http', async () => {
    const issuer = 'https://accounts.example.com';
    assert.equal(
      await discoverJwksUri(issuer, {
        fetch: doc(issuer, 'https://keys.example.net/oauth2/v3/certs'),
        timeoutMs: 1000,
      }),
      'https://keys.example.net/oauth2/v3/certs',
    );
    const local = 'http://127.0.0.1:8080/realms/dev';
    assert.equal(
      await discoverJwksUri(local, {
        fetch: doc(local, 'http://127.0.0.1:8080/realms/dev/certs'),
        timeoutMs: 1000,
      }),
      'http://127.0.0.1:8080/realms/dev/certs',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 1b. A header `typ` that is not a string (signed by the authorization server itself).
// ---------------------------------------------------------------------------------------------
describe('attacks on the typ header', () => {
  it('hole: a non-string typ is refused as a bad claim, not blamed on the JWK set (ERR_AUTH_TOKEN_KEYS_UNAVAILABLE)', async () => {
    const key = await newKey('k1');
    const verify = createVerifier({
      getKey: async () => (await importJWK(key.jwk, 'RS256')) as CryptoKey,
      issuer: 'https://as.example',
      audience: 'https://mcp.example/mcp',
      algorithms: ['RS256'],
      clockToleranceMs: 30_000,
      now: Date.now,
    });
    const claims = { iss: 'https://as.example', aud: 'https://mcp.example/mcp' };
    const got: Record<string, unknown> = {};
    for (const typ of [5, ['at+jwt'], null, { v: 'at+jwt' }]) {
      const result = await verify(await signWith(key, claims, { typ }));
      got[JSON.stringify(typ)] = result.ok ? 'accepted' : result.code;
    }
    assert.deepEqual(got, {
      '5': 'ERR_AUTH_TOKEN_CLAIMS',
      '["at+jwt"]': 'ERR_AUTH_TOKEN_CLAIMS',
      null: 'ERR_AUTH_TOKEN_CLAIMS',
      '{"v":"at+jwt"}': 'ERR_AUTH_TOKEN_CLAIMS',
    });
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Grants: claims of unexpected types.
// ---------------------------------------------------------------------------------------------
describe('attacks on claim grants', () => {
  const grant = (when: Partial<GrantConfig['when']>, name: string) =>
    ({ name, when, allow: ['*'], prompts: [], resources: [] }) as unknown as GrantConfig;
  const grants = compileClaimGrants([
    grant({ claim: 'groups', includes: 'admins' }, 'admins'),
    grant({ claim: 'realm_access.roles', includes: 'ops' }, 'ops'),
    grant({ scope: 'mcp:tools' }, 'tools'),
  ]);
  const who = (payload: Record<string, unknown>) => matchGrant(grants, payload)?.name;

  it('holds: only the exact value matches, whatever type the claim has', () => {
    const cases: [string, Record<string, unknown>, string | undefined][] = [
      ['string equal', { groups: 'admins' }, 'admins'],
      ['array includes', { groups: ['x', 'admins'] }, 'admins'],
      ['string containing it', { groups: 'admins,ops' }, undefined],
      ['space-joined string', { groups: 'users admins' }, undefined],
      ['prefix', { groups: 'admins-not' }, undefined],
      ['case', { groups: ['Admins'] }, undefined],
      ['array of arrays', { groups: [['admins']] }, undefined],
      ['object with the key', { groups: { admins: true } }, undefined],
      ['number', { groups: 7 }, undefined],
      ['boolean', { groups: true }, undefined],
      ['null', { groups: null }, undefined],
      ['fullwidth unicode', { groups: ['ａｄｍｉｎｓ'] }, undefined],
      ['trailing NUL', { groups: ['admins\u0000'] }, undefined],
      ['zero-width joiner', { groups: ['ad\u200dmins'] }, undefined],
      ['dotted path', { realm_access: { roles: ['ops'] } }, 'ops'],
      ['dotted path through an array', { realm_access: [{ roles: ['ops'] }] }, undefined],
      [
        'dotted path through the prototype',
        { realm_access: JSON.parse('{"__proto__":{"roles":["ops"]}}') },
        undefined,
      ],
      ['scope substring', { scope: 'mcp:toolsx' }, undefined],
      ['scope among others', { scope: 'a mcp:tools b' }, 'tools'],
      ['scope tab-joined', { scope: 'a\tmcp:tools' }, undefined],
      ['scope an object', { scope: { 'mcp:tools': 1 } }, undefined],
      ['scp string (Entra)', { scp: 'mcp:tools' }, 'tools'],
      ['scp nested', { scp: [['mcp:tools']] }, undefined],
      ['scope number', { scope: 1 }, undefined],
    ];
    const got = Object.fromEntries(cases.map(([n, p]) => [n, who(p)]));
    assert.deepEqual(got, Object.fromEntries(cases.map(([n, , w]) => [n, w])));
  });
});

// ---------------------------------------------------------------------------------------------
// 4. The metadata behind a path prefix, and whether a request can change where it points.
// ---------------------------------------------------------------------------------------------
describe('attacks on the protected-resource metadata (public_url behind a path prefix)', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let publicUrl: string;
  let base: string;

  before(async () => {
    as = await startAuthServer();
    upstream = await startSdkUpstream();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    publicUrl = `${base}/tenant-a/mcp`;
    const yaml = oauthGatewayConfig(port, upstream.url, as.issuer, as.jwksUri, [
      '    required_scopes: [mcp:tools]',
    ]).replace(`public_url: ${base}/mcp`, `public_url: ${publicUrl}`);
    gateway = await startTestGateway(yaml, {}, { listen: `127.0.0.1:${port}` });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await as.close();
  });

  it('holds: every variant names exactly public_url and the issuer; Host and X-Forwarded-* change nothing', async () => {
    const metadata = `${base}/.well-known/oauth-protected-resource/tenant-a/mcp`;
    const paths = [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/tenant-a/mcp',
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource?resource=https://evil.example',
    ];
    for (const path of paths) {
      const answer = await rawHttp(`${base}${path}`, 'GET', [
        'X-Forwarded-Host',
        'evil.example',
        'X-Forwarded-Proto',
        'https',
      ]);
      assert.equal(answer.status, 200, path);
      const doc = JSON.parse(answer.body) as Record<string, unknown>;
      assert.equal(doc.resource, publicUrl, path);
      assert.deepEqual(doc.authorization_servers, [as.issuer], path);
    }
    for (const path of [
      '/.well-known/oauth-protected-resource/other',
      '/.well-known/oauth-protected-resource/tenant-a/mcp/',
    ]) {
      const answer = await rawHttp(`${base}${path}`, 'GET', []);
      assert.notEqual(answer.status, 200, path);
    }
    const refused = await rawHttp(
      gateway.mcpUrl,
      'POST',
      [
        'Content-Type',
        'application/json',
        'Accept',
        'application/json, text/event-stream',
        'X-Forwarded-Host',
        'evil.example',
        'X-Forwarded-Prefix',
        '/evil',
        'Forwarded',
        'host=evil.example;proto=https',
      ],
      INIT,
    );
    assert.equal(refused.status, 401);
    assert.equal(
      refused.headers['www-authenticate'],
      `Bearer resource_metadata="${metadata}", scope="mcp:tools"`,
    );
    // The gateway's own path is not the resource: a token for it is refused; one for public_url accepted.
    const inner = await as.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools' });
    assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${inner}` })).status, 401);
    const outer = await as.sign({ aud: publicUrl, scope: 'mcp:tools' });
    assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${outer}` })).status, 200);
    const narrow = await as.sign({ aud: publicUrl, scope: 'mcp:read' });
    const denied = await post(gateway.mcpUrl, { authorization: `Bearer ${narrow}` });
    assert.equal(denied.status, 403);
    assert.equal(
      denied.headers.get('www-authenticate'),
      `Bearer resource_metadata="${metadata}", error="insufficient_scope", scope="mcp:tools"`,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Token caching at the exp edge (clock_tolerance 0).
// ---------------------------------------------------------------------------------------------
describe('attacks on the token cache', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: TestGateway;

  before(async () => {
    as = await startAuthServer();
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, as.issuer, as.jwksUri, ['    clock_tolerance: 0s']);
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await as.close();
  });

  it('holds: a token remembered as valid is refused once its exp passes', async () => {
    const exp = nowS() + 2;
    const token = await as.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools', exp });
    assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${token}` })).status, 200);
    assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${token}` })).status, 200);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    const late = await post(gateway.mcpUrl, { authorization: `Bearer ${token}` });
    assert.equal(late.status, 401);
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.request_id === late.headers.get('x-request-id')),
      2000,
      'audit line',
    );
    assert.equal(line.reason, 'ERR_AUTH_TOKEN_EXPIRED');
  });

  it('holds: a GET stream opened with a token ends when the token expires, with ERR_STREAM_EXPIRED', async () => {
    const exp = nowS() + 2;
    const token = await as.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools', exp });
    const stream = await openStream(gateway.mcpUrl, token);
    const started = Date.now();
    await Promise.race([stream.done, new Promise((r) => setTimeout(r, exp * 1000 - started + 3000))]);
    assert.ok(stream.ended(), 'the stream outlived its token');
    stream.close();
    assert.ok(Date.now() >= exp * 1000 - 50, 'the stream ended before its token expired');
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.http_method === 'GET'),
      2000,
      'the stream audit line',
    );
    assert.equal(line.reason, 'ERR_STREAM_EXPIRED');
  });
});

// ---------------------------------------------------------------------------------------------
// 3b. Grants within one session: a subject's narrower token must not ride on its wider one.
// ---------------------------------------------------------------------------------------------
describe('attacks on grants within one session', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: TestGateway;

  before(async () => {
    as = await startAuthServer();
    upstream = await startSdkUpstream();
    const port = await freePort();
    const yaml = oauthGatewayConfig(port, upstream.url, as.issuer, as.jwksUri).replace(
      '      - name: all\n        when: { scope: mcp:tools }\n        allow: ["*"]',
      [
        '      - name: admins',
        '        when: { claim: groups, includes: admins }',
        '        allow: ["*"]',
        '      - name: readers',
        '        when: { scope: mcp:read }',
        '        allow: [echo]',
      ].join('\n'),
    );
    assert.ok(yaml.includes('name: readers'));
    gateway = await startTestGateway(yaml, {}, { listen: `127.0.0.1:${port}` });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await as.close();
  });

  async function rpc(token: string, session: string | undefined, method: string, params: unknown, id = 2) {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        ...JSON_HEADERS,
        authorization: `Bearer ${token}`,
        'mcp-protocol-version': '2025-06-18',
        ...(session === undefined ? {} : { 'mcp-session-id': session }),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }),
    });
    const text = await res.text();
    const data = text.startsWith('{') ? text : (/^data: (.*)$/m.exec(text)?.[1] ?? '{}');
    return { status: res.status, session: res.headers.get('mcp-session-id'), body: JSON.parse(data) };
  }

  it('holds: a narrower token of the same subject, in the wide token’s session, sees and calls only its own tools', async () => {
    const wide = await as.sign({ sub: 'erin', aud: gateway.mcpUrl, groups: ['admins'], scope: 'mcp:read' });
    const narrow = await as.sign({ sub: 'erin', aud: gateway.mcpUrl, scope: 'mcp:read' });
    const init = await rpc(wide, undefined, 'initialize', JSON.parse(INIT).params, 1);
    const session = init.session!;
    assert.ok(session);
    await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${wide}`, 'mcp-session-id': session },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    }).then((r) => r.text());
    const names = (r: { body: { result?: { tools?: { name: string }[] } } }) =>
      (r.body.result?.tools ?? []).map((t) => t.name).sort();
    const wideList = await rpc(wide, session, 'tools/list', undefined, 3);
    assert.ok(names(wideList).includes('secret_admin'), JSON.stringify(wideList.body));
    const narrowList = await rpc(narrow, session, 'tools/list', undefined, 4);
    assert.deepEqual(names(narrowList), ['echo']);
    const before = upstream.received.length;
    const call = await rpc(narrow, session, 'tools/call', { name: 'secret_admin', arguments: {} }, 5);
    assert.ok(call.body.error, JSON.stringify(call.body));
    assert.equal(
      upstream.received.slice(before).some((m) => JSON.stringify(m).includes('secret_admin')),
      false,
    );
    // And the reverse order: the wide token again sees everything.
    assert.ok(names(await rpc(wide, session, 'tools/list', undefined, 6)).includes('secret_admin'));
  });
});

// ---------------------------------------------------------------------------------------------
// 5b. A key removed from the JWK set (revoked), with the background refresh.
// ---------------------------------------------------------------------------------------------
describe('attacks on a revoked signing key', () => {
  let k1: Key;
  let k2: Key;
  let keys: Key[];
  let server: Server;
  let origin: string;
  let upstream: SdkUpstream;
  let gateway: TestGateway;

  before(async () => {
    k1 = await newKey('k1');
    k2 = await newKey('k2');
    keys = [k1];
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, `${origin}/realm`, `${origin}/jwks`, [], {
      oauthTuning: { refreshMs: 300 },
    });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  /**
   * Polls with fresh tokens of `key` (a new subject each, so none is answered from the token cache)
   * until one gets `status`: the background refresh (every 300 ms here) has read the changed set. A
   * fixed wait would be a timing bound a loaded machine could miss.
   */
  async function untilKeyAnswers(key: Key, status: number): Promise<{ status: number; headers: Headers }> {
    const claims = { iss: `${origin}/realm`, aud: gateway.mcpUrl, scope: 'mcp:tools' };
    let n = 0;
    return waitFor(
      async () => {
        const token = await signWith(key, { ...claims, sub: `poll-${key.kid}-${++n}` });
        const res = await post(gateway.mcpUrl, { authorization: `Bearer ${token}` });
        return res.status === status ? res : undefined;
      },
      20_000,
      `a fresh token of ${key.kid} answered ${status}`,
    );
  }

  it('holds: once the set no longer has a key, no token of it is accepted that was not already remembered', async () => {
    const claims = { iss: `${origin}/realm`, aud: gateway.mcpUrl, scope: 'mcp:tools' };
    const first = await signWith(k1, claims);
    assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${first}` })).status, 200);
    keys = [k2];
    const refused = await untilKeyAnswers(k1, 401);
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.request_id === refused.headers.get('x-request-id')),
      2000,
      'audit line',
    );
    assert.equal(line.reason, 'ERR_AUTH_TOKEN_UNKNOWN_KEY');
    assert.equal(
      (await post(gateway.mcpUrl, { authorization: `Bearer ${await signWith(k2, claims)}` })).status,
      200,
    );
    // An empty set (a misconfigured server) refuses everything, and is not a way back for k1.
    keys = [];
    await new Promise((r) => setTimeout(r, 800));
    const again = await signWith(k1, { ...claims, sub: 'subject-3' });
    assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${again}` })).status, 401);
  });

  it('holds: a reload ends a GET stream whose token’s key left the set, and keeps one whose key is there', async () => {
    keys = [k1, k2];
    await untilKeyAnswers(k1, 200);
    const claims = { iss: `${origin}/realm`, aud: gateway.mcpUrl, scope: 'mcp:tools' };
    const revoked = await openStream(gateway.mcpUrl, await signWith(k1, { ...claims, sub: 'stream-1' }));
    const kept = await openStream(gateway.mcpUrl, await signWith(k2, { ...claims, sub: 'stream-2' }));
    try {
      keys = [k2];
      await untilKeyAnswers(k1, 401);
      const yaml = oauthGatewayConfig(
        Number(new URL(gateway.mcpUrl).port),
        upstream.url,
        `${origin}/realm`,
        `${origin}/jwks`,
        ['rate_limit:', '  capacity: 500', '  refill_per_second: 500'],
      );
      const { config: next, issues } = parseConfigText(yaml, {}, Date.now());
      assert.ok(next, JSON.stringify(issues));
      const outcome = await gateway.runtime.reload(next);
      assert.equal(outcome.applied, true);
      await Promise.race([revoked.done, new Promise((r) => setTimeout(r, 2000))]);
      assert.ok(revoked.ended(), 'the stream of the revoked key outlived the reload');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(kept.ended(), false, 'the stream of a key still published was ended');
    } finally {
      revoked.close();
      kept.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 2c. A JWK set past 1 MiB, its key at the end: read only up to the cap.
// ---------------------------------------------------------------------------------------------
describe('attacks on the JWK set size', () => {
  let key: Key;
  let server: Server;
  let origin: string;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  const logged = capturingLog();

  before(async () => {
    key = await newKey('k1');
    server = createServer((_req, res) => {
      // Chunked (no content-length): 2 MiB of filler keys, then the real key.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[');
      const filler = `${JSON.stringify({ kty: 'oct', kid: 'f', k: 'A'.repeat(1000) })},`;
      let sent = 0;
      const pump = () => {
        while (sent < 2 * 1024 * 1024) {
          sent += filler.length;
          if (!res.write(filler)) return void res.once('drain', pump);
        }
        res.end(`${JSON.stringify(key.jwk)}]}`);
      };
      res.on('error', () => {});
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, `${origin}/realm`, `${origin}/jwks`, [], {
      log: logged.log,
    });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('holds: a 2 MiB JWK set is a failed fetch, so the key after the first MiB never validates', async () => {
    await waitFor(() => logged.lines.some((l) => l.includes('JWK set fetch failed')), 5000, 'warning');
    assert.ok(logged.lines.some((l) => l.includes('larger than 1048576 bytes')));
    const token = await signWith(key, { iss: `${origin}/realm`, aud: gateway.mcpUrl, scope: 'mcp:tools' });
    assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${token}` })).status, 401);
    const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as { oauth?: { jwks?: string } };
    assert.equal(ready.oauth?.jwks, 'unavailable');
  });
});

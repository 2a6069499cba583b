/**
 * Attack review of the OAuth resource server (authentication surface). Each describe block is one
 * attack; the comment above it says what the README promises and what the gateway did.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';
import { parseConfigText } from '../../src/config/load.ts';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { oauthGatewayConfig, startOAuthGateway } from '../helpers/auth-server.ts';

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'atk', version: '1' } },
});

async function post(url: string, headers: Record<string, string>, body = INIT) {
  const res = await fetch(url, { method: 'POST', headers: { ...JSON_HEADERS, ...headers }, body });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

interface Key {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

/**
 * A JWK set server whose answer the test switches: the keys, a 200 whose body is not a JWK set
 * (an HTML maintenance page, as a misrouted proxy or a captive portal answers), or a 200 whose
 * body never comes.
 */
async function startJwks(keys: Key[]) {
  let mode: 'good' | 'garbage' | 'stall' = 'good';
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    if (mode === 'good') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
    } else if (mode === 'garbage') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html><body>Down for maintenance</body></html>');
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[');
      // never ends
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/jwks`,
    issuer: `${origin}/realm`,
    get hits() {
      return hits;
    },
    setMode(m: typeof mode) {
      mode = m;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function sign(key: Key, issuer: string, claims: JWTPayload): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: issuer, sub: 'subject-1', iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'at+jwt' })
    .sign(key.privateKey);
}

interface Warn {
  readonly obj: unknown;
  readonly msg: string | undefined;
}

function recordingLog(warnings: Warn[]) {
  return {
    trace() {},
    debug() {},
    info() {},
    warn: (obj: object | string, msg?: string) => void warnings.push({ obj, msg }),
    error() {},
    fatal() {},
  };
}

/*
 * ATTACK: a JWK set endpoint that answers 200 with a body that is not a JWK set (or a 200 whose body
 * never arrives), plus a client sending tokens with unknown kids.
 *
 * README ("Key rotation and outages"): an unknown kid refetches the set "at most once per 30 s";
 * when the authorization server is down "an unknown kid is refused (ERR_AUTH_TOKEN_KEYS_UNAVAILABLE)
 * with a warning in the operational log, and no fetch is tried again for 5 s"; `/readyz` reports
 * "stale" when the last fetch failed. keys.ts counts a fetch as failed only when fetch() throws or
 * the status is not 200: a 200 with an unreadable body is "ok" (no failedAt, no warning), and jose
 * does not move its cooldown timestamp on a failed parse, so every unknown-kid token refetches.
 */
describe('attack: a JWK set answering 200 with garbage, and tokens with unknown kids', () => {
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let known: Key;
  let unknown: Key;
  const warnings: Warn[] = [];
  const KID_COOLDOWN = 200;

  before(async () => {
    known = await newKey('k1');
    unknown = await newKey('k-unknown');
    jwks = await startJwks([known]);
    upstream = await startSdkUpstream();
    const port = await freePort();
    gateway = await startTestGateway(
      oauthGatewayConfig(port, upstream.url, jwks.issuer, jwks.url),
      {},
      {
        listen: `127.0.0.1:${port}`,
        log: recordingLog(warnings),
        // The unknown-kid cooldown is shortened so the test need not wait 30 s; the failure
        // cooldown keeps its default (5 s).
        oauthTuning: { cooldownMs: KID_COOLDOWN },
      },
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('a garbage 200 counts as a failed fetch: unknown kids refetch at most once per cooldown', async () => {
    const aud = gateway.mcpUrl;
    const good = await sign(known, jwks.issuer, { aud, scope: 'mcp:tools' });
    assert.equal((await post(aud, { authorization: `Bearer ${good}` })).status, 200);
    jwks.setMode('garbage');
    await new Promise((r) => setTimeout(r, KID_COOLDOWN + 50));
    const before = jwks.hits;
    const N = 20;
    for (let i = 0; i < N; i++) {
      const token = await sign(unknown, jwks.issuer, { aud, scope: 'mcp:tools', jti: String(i) });
      const answer = await post(aud, { authorization: `Bearer ${token}` });
      assert.equal(answer.status, 401);
    }
    const fetches = jwks.hits - before;
    // Sent well within the 5 s failure cooldown: one fetch, then none (README: "no fetch is tried
    // again for 5 s").
    assert.ok(fetches <= 1, `${N} tokens with an unknown kid made ${fetches} JWK set fetches`);
  });

  it('the garbage answer is warned about in the operational log', () => {
    assert.ok(
      warnings.some((w) => /JWK set fetch failed/.test(w.msg ?? '')),
      `no warning in the operational log (warnings: ${JSON.stringify(warnings.map((w) => w.msg))})`,
    );
  });

  it('/readyz says the keys are stale, not ok', async () => {
    const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as { oauth: { jwks: string } };
    assert.equal(ready.oauth.jwks, 'stale');
  });

  it('(holds) a token of the cached key still validates while the set is garbage', async () => {
    const aud = gateway.mcpUrl;
    const ok = await sign(known, jwks.issuer, { aud, scope: 'mcp:tools', jti: 'after' });
    assert.equal((await post(aud, { authorization: `Bearer ${ok}` })).status, 200);
    jwks.setMode('good');
  });
});

/*
 * ATTACK: the same with a 200 whose body never completes (headers sent, then silence). Each request
 * with an unknown kid then waits the whole fetch timeout (5 s), one after another, since the stalled
 * body is not counted as a failure either.
 */
describe('attack: a JWK set whose 200 body stalls, and tokens with unknown kids', () => {
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let known: Key;
  let unknown: Key;
  const KID_COOLDOWN = 100;

  before(async () => {
    known = await newKey('k1');
    unknown = await newKey('k-unknown');
    jwks = await startJwks([known]);
    upstream = await startSdkUpstream();
    const port = await freePort();
    gateway = await startTestGateway(
      oauthGatewayConfig(port, upstream.url, jwks.issuer, jwks.url),
      {},
      {
        listen: `127.0.0.1:${port}`,
        // Fetch timeout 300 ms and failure cooldown 5 s (the README's ratio is 5 s to 5 s; the
        // point is that a timed-out body must start the failure cooldown at all).
        oauthTuning: { cooldownMs: KID_COOLDOWN, timeoutMs: 300, failureCooldownMs: 5000 },
      },
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('a stalled 200 body starts the failure cooldown: later unknown kids are refused at once', async () => {
    const aud = gateway.mcpUrl;
    jwks.setMode('stall');
    await new Promise((r) => setTimeout(r, KID_COOLDOWN + 50));
    const before = jwks.hits;
    for (let i = 0; i < 5; i++) {
      const token = await sign(unknown, jwks.issuer, { aud, scope: 'mcp:tools', jti: String(i) });
      assert.equal((await post(aud, { authorization: `Bearer ${token}` })).status, 401);
    }
    // Before, each of the five waited out the stalled body (a fetch each); now the first failure
    // starts the cooldown and the others are refused without a fetch.
    const fetches = jwks.hits - before;
    assert.ok(fetches <= 1, `5 tokens with an unknown kid made ${fetches} JWK set fetches`);
  });
});

/*
 * ATTACK (operator's lever): the global `rate_limit` is lowered by a reload while a subject abuses
 * the gateway with its OAuth token.
 *
 * README ("Reloading the config"): `rate_limit.capacity`/`refill_per_second`/`max_streams` are
 * "Applied at once"; only `auth.oauth` needs a restart. The OAuth resource server is built once at
 * start (Durable) and compiles every token's limits from the start config's `rate_limit`
 * (authenticator.ts: `compileLimits(..., config.rate_limit, ...)`), so tokens keep the old limits
 * until a restart, silently (the reload logs no "needs a restart" for them). An API key on the same
 * gateway gets the new limits at once.
 */
describe('attack: rate_limit lowered by a reload, OAuth subjects keep the old limit', () => {
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let key: Key;
  let port: number;
  const API_KEY = 'opaque-api-key-for-the-reload-attack-0123456789';

  const config = (capacity: number, refill: number) =>
    oauthGatewayConfig(port, upstream.url, jwks.issuer, jwks.url, [
      'rate_limit:',
      `  capacity: ${capacity}`,
      `  refill_per_second: ${refill}`,
      'keys:',
      '  - label: ci',
      `    hash: "${createHash('sha256').update(API_KEY).digest('hex')}"`,
      '    allow: ["*"]',
    ]);

  before(async () => {
    key = await newKey('k1');
    jwks = await startJwks([key]);
    upstream = await startSdkUpstream();
    port = await freePort();
    gateway = await startTestGateway(config(1000, 1000), {}, { listen: `127.0.0.1:${port}` });
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('after a reload to capacity 2 / refill 0, a token subject gets 429 on its third request', async () => {
    const { config: next, issues } = parseConfigText(config(2, 0), {}, Date.now());
    assert.ok(next, JSON.stringify(issues));
    const outcome = await gateway.runtime.reload(next);
    assert.equal(outcome.applied, true);
    assert.deepEqual(outcome.restart, []);
    // Control: the API key is limited at once.
    const keyStatuses: number[] = [];
    for (let i = 0; i < 3; i++)
      keyStatuses.push((await post(gateway.mcpUrl, { 'x-api-key': API_KEY })).status);
    assert.deepEqual(keyStatuses, [200, 200, 429], 'the API key');
    // A subject never seen before (no bucket from before the reload), same limits expected.
    const token = await sign(key, jwks.issuer, {
      sub: 'fresh-subject',
      aud: gateway.mcpUrl,
      scope: 'mcp:tools',
    });
    const tokenStatuses: number[] = [];
    for (let i = 0; i < 3; i++)
      tokenStatuses.push((await post(gateway.mcpUrl, { authorization: `Bearer ${token}` })).status);
    assert.deepEqual(tokenStatuses, [200, 200, 429], 'the OAuth subject');
  });
});

/*
 * One gateway with an mcpgate key and OAuth, for the leak and confusion attacks below.
 */
describe('attacks on credential placement and principals', () => {
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let key: Key;
  const MCPG = mintKey(randomBytes(32));

  before(async () => {
    key = await newKey('k1');
    jwks = await startJwks([key]);
    upstream = await startSdkUpstream();
    const port = await freePort();
    gateway = await startTestGateway(
      oauthGatewayConfig(port, upstream.url, jwks.issuer, jwks.url, [
        'rate_limit:',
        '  capacity: 1000',
        '  refill_per_second: 1000',
        'keys:',
        '  - label: ci',
        `    hash: "sha256:${sha256Hex(MCPG)}"`,
        '    allow: ["*"]',
      ]),
      {},
      { listen: `127.0.0.1:${port}` },
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  const auditFor = (answer: { headers: Headers }) =>
    waitFor(
      () => gateway.auditLines.find((l) => l.request_id === answer.headers.get('x-request-id')),
      2000,
      'audit line',
    );

  /*
   * ATTACK: the client's whole Authorization value copied into the query string
   * (`?authorization=Bearer+<jwt>`, as a form or a misconfigured client writes it), beside a valid
   * header.
   *
   * README (Security model 3): refused with 401 is "any key in the query string, even beside a
   * valid header: under a usual name (`?key=`, `?token=`, ...), an mcpgate key under any name or
   * bare, or a JWT". query-credential.ts finds an mcpgate key anywhere in a value (`includes`), but
   * a JWT only when it is the whole value (after trim): `Bearer <jwt>`, a quoted JWT, or one in a
   * JSON `state` value is not seen, and `authorization` is not among the usual names. The request
   * was forwarded (200) and the audit line says allow.
   */
  it('refuses a JWT in the query string behind a "Bearer " prefix (?authorization=Bearer+<jwt>)', async () => {
    const token = await sign(key, jwks.issuer, { aud: gateway.mcpUrl, scope: 'mcp:tools', sub: 'q1' });
    const before = upstream.received.length;
    const answer = await post(`${gateway.mcpUrl}?authorization=Bearer+${token}`, {
      authorization: `Bearer ${token}`,
    });
    assert.equal(answer.status, 401, `answered ${answer.status}: the request was served`);
    assert.equal((await auditFor(answer)).reason, 'ERR_AUTH_KEY_IN_QUERY');
    assert.equal(upstream.received.length, before, 'the upstream received the request');
  });

  it('(holds, for contrast) refuses the same with an mcpgate key (?authorization=Bearer+mcpg_...)', async () => {
    const answer = await post(`${gateway.mcpUrl}?authorization=Bearer+${MCPG}`, {
      authorization: `Bearer ${MCPG}`,
    });
    assert.equal(answer.status, 401);
    assert.equal((await auditFor(answer)).reason, 'ERR_AUTH_KEY_IN_QUERY');
  });

  /*
   * ATTACK: the client's key sent again as X-Request-Id (a client that labels requests with its
   * credential, or a log-harvesting setup that gets clients to). requestIdFor accepts any
   * `[A-Za-z0-9._:-]{1,128}`, which every mcpgate key (54 chars, `mcpg_` + base62) matches.
   *
   * README ("Audit log"): "Never in any log: keys, tokens, ..."; "attribute every request ... to
   * the key's label and an 8-hex key id (the key itself is never logged)"; Proxy (10): the
   * client's credentials never cross to the upstream. Observed: the key is the audit line's
   * `request_id`, is echoed in the response's X-Request-Id, and reaches the upstream as
   * X-Request-Id.
   */
  it('never writes the key into the audit line or the upstream request via X-Request-Id', async () => {
    const before = upstream.received.length;
    const answer = await post(gateway.mcpUrl, { authorization: `Bearer ${MCPG}`, 'x-request-id': MCPG });
    assert.equal(answer.status, 200);
    const line = await waitFor(() => gateway.auditLines.at(-1), 2000, 'audit line');
    await waitFor(() => (upstream.received.length > before ? true : undefined), 2000, 'upstream request');
    const leaked = [
      JSON.stringify(gateway.auditLines).includes(MCPG) ? 'audit line' : '',
      JSON.stringify(upstream.received.slice(before).map((r) => r.headers)).includes(MCPG)
        ? 'upstream request headers'
        : '',
      (answer.headers.get('x-request-id') ?? '') === MCPG ? 'response X-Request-Id' : '',
    ].filter(Boolean);
    assert.deepEqual(
      leaked,
      [],
      `the key was written to: ${leaked.join(', ')} (line ${JSON.stringify(line)})`,
    );
  });

  /*
   * The same through User-Agent, which the audit line logs and the upstream receives, and a token
   * in either header: a client's credential in a header the gateway logs or forwards is dropped
   * (X-Request-Id: a fresh id; User-Agent: not forwarded, logged as redacted).
   */
  it('never writes a key or token given as User-Agent or X-Request-Id into the audit line or upstream', async () => {
    const token = await sign(key, jwks.issuer, { aud: gateway.mcpUrl, scope: 'mcp:tools', sub: 'ua' });
    const short = 'eyJhbGciOiJub25lIn0.e30.';
    for (const [ua, id] of [
      [`client/1.0 (${MCPG})`, short],
      [`client/1.0 Bearer ${token}`, 'fine-id-1'],
    ] as const) {
      const before = upstream.received.length;
      const lines = gateway.auditLines.length;
      const answer = await post(gateway.mcpUrl, {
        authorization: `Bearer ${MCPG}`,
        'user-agent': ua,
        'x-request-id': id,
      });
      assert.equal(answer.status, 200);
      const line = await waitFor(() => gateway.auditLines[lines], 2000, 'audit line');
      await waitFor(() => (upstream.received.length > before ? true : undefined), 2000, 'upstream');
      const sent = upstream.received[before]!.headers;
      assert.equal(sent['user-agent'], undefined, 'the User-Agent is not forwarded');
      assert.equal((line as { user_agent?: string }).user_agent, '[redacted: looks like a credential]');
      for (const secret of [MCPG, token, short]) {
        assert.ok(!JSON.stringify(line).includes(secret), 'not in the audit line');
        assert.ok(!JSON.stringify(sent).includes(secret), 'not upstream');
        assert.notEqual(answer.headers.get('x-request-id'), secret, 'not echoed');
      }
      if (id === 'fine-id-1') assert.equal(answer.headers.get('x-request-id'), id, 'a plain id is kept');
    }
    // A plain User-Agent still goes upstream and to the audit line as sent.
    const before = upstream.received.length;
    const answer = await post(gateway.mcpUrl, {
      authorization: `Bearer ${MCPG}`,
      'user-agent': 'client/2.0 (x86_64)',
    });
    assert.equal(answer.status, 200);
    await waitFor(() => (upstream.received.length > before ? true : undefined), 2000, 'upstream');
    assert.equal(upstream.received[before]!.headers['user-agent'], 'client/2.0 (x86_64)');
  });

  /*
   * HOLDS: an Mcp-Session-Id opened by an API key, presented with an OAuth token (and the other way
   * round), is 404 and never reaches the upstream (the OAuth test covers only subject vs subject).
   */
  it('(holds) a session opened by an API key is not usable by a token, nor the reverse', async () => {
    const token = await sign(key, jwks.issuer, { aud: gateway.mcpUrl, scope: 'mcp:tools', sub: 'ci' });
    const byKey = await post(gateway.mcpUrl, { authorization: `Bearer ${MCPG}` });
    const byToken = await post(gateway.mcpUrl, { authorization: `Bearer ${token}` });
    const keySession = byKey.headers.get('mcp-session-id')!;
    const tokenSession = byToken.headers.get('mcp-session-id')!;
    assert.ok(keySession && tokenSession);
    const before = upstream.received.length;
    const ping = '{"jsonrpc":"2.0","id":2,"method":"ping"}';
    const common = { 'mcp-protocol-version': '2025-06-18' };
    const a = await post(
      gateway.mcpUrl,
      { ...common, authorization: `Bearer ${token}`, 'mcp-session-id': keySession },
      ping,
    );
    const b = await post(
      gateway.mcpUrl,
      { ...common, authorization: `Bearer ${MCPG}`, 'mcp-session-id': tokenSession },
      ping,
    );
    assert.deepEqual([a.status, b.status], [404, 404]);
    assert.equal((await auditFor(a)).reason, 'ERR_SESSION_NOT_FOUND');
    assert.equal((await auditFor(a)).sub, 'ci');
    assert.equal((await auditFor(b)).key, 'ci');
    assert.equal(upstream.received.length, before);
  });
});

/*
 * HOLDS: token forms not covered by oauth.test.ts, each refused with 401 and never forwarded.
 */
describe('(holds) token forms the verifier must refuse', () => {
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let attackerJwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let key: Key;
  let attacker: Key;

  before(async () => {
    key = await newKey('k1');
    attacker = await newKey('k-attacker');
    jwks = await startJwks([key]);
    attackerJwks = await startJwks([attacker]);
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, jwks.issuer, jwks.url);
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
    await attackerJwks.close();
  });

  it('refuses iss with a trailing slash, unknown crit, empty/non-string sub, and embedded jwk/jku keys', async () => {
    const aud = gateway.mcpUrl;
    const base = { aud, scope: 'mcp:tools' };
    const now = Math.floor(Date.now() / 1000);
    const custom = (
      k: Key,
      claims: JWTPayload,
      header: Record<string, unknown>,
      crit?: Record<string, boolean>,
    ) =>
      new SignJWT({ iss: jwks.issuer, sub: 's', iat: now, exp: now + 300, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: k.kid, typ: 'at+jwt', ...header })
        .sign(k.privateKey, crit ? { crit } : undefined);
    const cases: [string, string, string][] = [
      ['iss with a trailing slash', await sign(key, `${jwks.issuer}/`, base), 'ERR_AUTH_TOKEN_ISSUER'],
      [
        'iss as an array',
        await custom(key, { ...base, iss: [jwks.issuer] as unknown as string }, {}),
        'ERR_AUTH_TOKEN_ISSUER',
      ],
      [
        'unknown crit header',
        await custom(key, base, { crit: ['x-must'], 'x-must': 1 }, { 'x-must': true }),
        'ERR_AUTH_TOKEN_ALGORITHM',
      ],
      ['empty sub', await custom(key, { ...base, sub: '' }, {}), 'ERR_AUTH_TOKEN_CLAIMS'],
      [
        'numeric sub',
        await custom(key, { ...base, sub: 7 as unknown as string }, {}),
        'ERR_AUTH_TOKEN_CLAIMS',
      ],
      [
        'aud array without this resource',
        await sign(key, jwks.issuer, { ...base, aud: ['https://a.example', 'https://b.example'] }),
        'ERR_AUTH_TOKEN_AUDIENCE',
      ],
      [
        'attacker key embedded as jwk',
        await custom(attacker, base, {
          jwk: { kty: attacker.jwk.kty, n: attacker.jwk.n, e: attacker.jwk.e },
        }),
        'ERR_AUTH_TOKEN_UNKNOWN_KEY',
      ],
      ['attacker jku', await custom(attacker, base, { jku: attackerJwks.url }), 'ERR_AUTH_TOKEN_UNKNOWN_KEY'],
      [
        'attacker key under the real kid',
        await custom({ ...attacker, kid: 'k1' }, base, {}),
        'ERR_AUTH_TOKEN_SIGNATURE',
      ],
    ];
    const before = upstream.received.length;
    const reasons: Record<string, unknown> = {};
    for (const [name, token] of cases) {
      const answer = await post(aud, { authorization: `Bearer ${token}` });
      assert.equal(answer.status, 401, name);
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.request_id === answer.headers.get('x-request-id')),
        2000,
        name,
      );
      reasons[name] = line.reason;
    }
    assert.deepEqual(reasons, Object.fromEntries(cases.map(([n, , r]) => [n, r])));
    assert.equal(upstream.received.length, before);
    assert.equal(attackerJwks.hits, 0, 'the gateway fetched keys from the jku');
  });
});

/*
 * ATTACK (same root cause as above, worse): the JWK set answers 200 with garbage from the start, so
 * no key was ever loaded. Every JWT-shaped bearer, from anyone, with any kid, then makes one JWK set
 * fetch: an unauthenticated client turns each of its requests into a request to the authorization
 * server. README: a failed fetch means "no fetch is tried again for 5 s".
 */
describe('attack: a JWK set that has answered only garbage, and a flood of bearer tokens', () => {
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let attacker: Key;

  before(async () => {
    attacker = await newKey('whatever');
    jwks = await startJwks([]);
    jwks.setMode('garbage');
    upstream = await startSdkUpstream();
    gateway = await startOAuthGateway(upstream.url, jwks.issuer, jwks.url);
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await jwks.close();
  });

  it('20 self-signed tokens from an unauthenticated client make at most one JWK set fetch', async () => {
    const before = jwks.hits;
    for (let i = 0; i < 20; i++) {
      const token = await sign(attacker, jwks.issuer, { aud: gateway.mcpUrl, jti: String(i) });
      assert.equal((await post(gateway.mcpUrl, { authorization: `Bearer ${token}` })).status, 401);
    }
    const fetches = jwks.hits - before;
    assert.ok(fetches <= 1, `20 requests made ${fetches} JWK set fetches`);
  });
});

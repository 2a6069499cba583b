/**
 * Issue 13: the gateway as an OAuth 2.1 resource server, end to end. A real authorization server on
 * loopback (jose keys, discovery and a JWK set over HTTP, a client credentials token endpoint), a
 * real SDK upstream, and for the discovery flow the official SDK client's own OAuth support.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startAuthServer } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, waitFor } from '../helpers/net.ts';

const KEY = mintKey(randomBytes(32));
const CLIENTS = {
  admin: { secret: 'admin-secret', scopes: ['mcp:tools'], claims: { groups: ['staff', 'admins'] } },
  reader: { secret: 'reader-secret', scopes: ['mcp:tools', 'mcp:read'] },
  nobody: { secret: 'nobody-secret', scopes: ['mcp:tools'] },
};

function configFor(port: number, upstreamUrl: string, issuer: string, extra: string[] = []): string {
  return [
    `listen: 127.0.0.1:${port}`,
    `public_url: http://127.0.0.1:${port}/mcp`,
    'upstream:',
    `  url: ${upstreamUrl}`,
    'rate_limit:',
    '  capacity: 1000',
    '  refill_per_second: 1000',
    'keys:',
    `  - label: ci`,
    `    hash: "sha256:${sha256Hex(KEY)}"`,
    '    allow: [echo]',
    'auth:',
    '  session_secret: "0123456789abcdef0123456789abcdef-oauth"',
    '  oauth:',
    `    issuer: ${issuer}`,
    '    required_scopes: [mcp:tools]',
    '    grants:',
    '      - name: admins',
    '        when: { claim: groups, includes: admins }',
    '        allow: ["*"]',
    '      - name: readers',
    '        when: { scope: mcp:read }',
    '        allow: [echo]',
    ...extra,
  ].join('\n');
}

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const initialize = (id: number | string) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'oauth-e2e', version: '1' },
    },
  });

async function post(url: string, token: string | undefined, id: number | string = 7) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...JSON_HEADERS, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: initialize(id),
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

async function connect(url: string, token: string) {
  const client = new Client({ name: 'oauth-e2e', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return client;
}

const toolNames = async (client: Client) => (await client.listTools()).tools.map((t) => t.name).sort();

describe('OAuth resource server', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let mcpUrl: string;
  let metadataUrl: string;
  const aud = () => mcpUrl;

  before(async () => {
    as = await startAuthServer({ clients: CLIENTS });
    upstream = await startSdkUpstream();
    const port = await freePort();
    gateway = await startTestGateway(
      configFor(port, upstream.url, as.issuer),
      {},
      { listen: `127.0.0.1:${port}` },
    );
    mcpUrl = gateway.mcpUrl;
    metadataUrl = `${gateway.url}/.well-known/oauth-protected-resource/mcp`;
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await as.close();
  });

  const auditFor = (requestId: string | null) =>
    waitFor(() => gateway.auditLines.find((l) => l.request_id === requestId), 2000, 'audit line');

  it('answers 401 with a pointer to its metadata, the scope, and the request id', async () => {
    const answer = await post(mcpUrl, undefined, 'id-401');
    assert.equal(answer.status, 401);
    assert.equal(
      answer.headers.get('www-authenticate'),
      `Bearer resource_metadata="${metadataUrl}", scope="mcp:tools"`,
    );
    const body = JSON.parse(answer.body) as { id: unknown; error: { code: number } };
    assert.equal(body.id, 'id-401');
    assert.equal(body.error.code, -32001);
    const line = await auditFor(answer.headers.get('x-request-id'));
    assert.equal(line.reason, 'ERR_AUTH_MISSING');
  });

  it('serves RFC 9728 metadata at the root and path-inserted, with CORS', async () => {
    const expected = {
      resource: mcpUrl,
      authorization_servers: [as.issuer],
      scopes_supported: ['mcp:tools', 'mcp:read'],
      bearer_methods_supported: ['header'],
      resource_name: 'mcpgate',
    };
    for (const url of [metadataUrl, `${gateway.url}/.well-known/oauth-protected-resource`]) {
      const res = await fetch(url, { headers: { origin: 'https://claude.ai' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.deepEqual(await res.json(), expected);
    }
    const preflight = await fetch(metadataUrl, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://claude.ai',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'mcp-protocol-version',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /mcp-protocol-version/);
  });

  it('refuses every bad token with 401 invalid_token, each with its own audit reason', async () => {
    const now = Math.floor(Date.now() / 1000);
    const scope = 'mcp:tools mcp:read';
    const cases: [string, Promise<string> | string, string][] = [
      ['expired', as.sign({ aud: aud(), scope, iat: now - 600, exp: now - 120 }), 'ERR_AUTH_TOKEN_EXPIRED'],
      ['not yet valid', as.sign({ aud: aud(), scope, nbf: now + 600 }), 'ERR_AUTH_TOKEN_NOT_YET_VALID'],
      [
        'issued in the future',
        as.sign({ aud: aud(), scope, iat: now + 600 }),
        'ERR_AUTH_TOKEN_NOT_YET_VALID',
      ],
      [
        'wrong iss',
        as.sign({ aud: aud(), scope, iss: 'http://evil.example/realms/test' }),
        'ERR_AUTH_TOKEN_ISSUER',
      ],
      [
        'minted for another resource',
        as.sign({ aud: 'https://other.example/mcp', scope }),
        'ERR_AUTH_TOKEN_AUDIENCE',
      ],
      ['alg none', as.unsigned({ aud: aud(), scope }), 'ERR_AUTH_TOKEN_ALGORITHM'],
      ['HS256 with the public key', as.hmacWithPublicKey({ aud: aud(), scope }), 'ERR_AUTH_TOKEN_ALGORITHM'],
      ['signed by an unknown key', as.signUnpublished({ aud: aud(), scope }), 'ERR_AUTH_TOKEN_UNKNOWN_KEY'],
      ['a forged signature', as.sign({ aud: aud(), scope }).then(forgeSignature), 'ERR_AUTH_TOKEN_SIGNATURE'],
      ['garbage', 'eyJub3QiOiJqc29u.Z2FyYmFnZQ.Z2FyYmFnZQ', 'ERR_AUTH_TOKEN_MALFORMED'],
      ['no exp', as.sign({ aud: aud(), scope, exp: undefined }), 'ERR_AUTH_TOKEN_CLAIMS'],
      [
        'an ID token typ',
        as.sign({ aud: aud(), scope }, { header: { typ: 'id+jwt' } }),
        'ERR_AUTH_TOKEN_CLAIMS',
      ],
    ];
    const before = upstream.received.length;
    for (const [name, pending, reason] of cases) {
      const token = await pending;
      const answer = await post(mcpUrl, token, name);
      assert.equal(answer.status, 401, name);
      assert.equal(
        answer.headers.get('www-authenticate'),
        `Bearer resource_metadata="${metadataUrl}", error="invalid_token", scope="mcp:tools"`,
        name,
      );
      assert.equal((JSON.parse(answer.body) as { id: unknown }).id, name);
      const line = await auditFor(answer.headers.get('x-request-id'));
      assert.equal(line.reason, reason, name);
      assert.equal(line.decision, 'unauthenticated', name);
      assert.ok(!JSON.stringify(line).includes(token), `${name}: the token is in the audit line`);
    }
    assert.equal(upstream.received.length, before, 'the upstream received a request');
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(metrics, /mcpgate_token_failures_total\{reason="expired"\} 1/);
    assert.match(metrics, /mcpgate_token_failures_total\{reason="algorithm"\} 2/);
  });

  it('answers 403 insufficient_scope to a valid token without the required scope, and audits who it was', async () => {
    const token = await as.sign({ aud: aud(), scope: 'mcp:read', sub: 'carol', azp: 'cli' });
    const answer = await post(mcpUrl, token, 3);
    assert.equal(answer.status, 403);
    assert.equal(
      answer.headers.get('www-authenticate'),
      `Bearer resource_metadata="${metadataUrl}", error="insufficient_scope", scope="mcp:tools"`,
    );
    assert.equal((JSON.parse(answer.body) as { id: unknown }).id, 3);
    const line = await auditFor(answer.headers.get('x-request-id'));
    assert.equal(line.reason, 'ERR_INSUFFICIENT_SCOPE');
    assert.equal(line.decision, 'deny');
    assert.equal(line.sub, 'carol');
    assert.equal(line.client_id, 'cli');
    assert.equal(line.grant, undefined);
  });

  it('gives two tokens with different claims different tools and call permissions; no grant, nothing', async () => {
    const admin = await connect(
      mcpUrl,
      await as.sign({ sub: 'alice', aud: aud(), scope: 'mcp:tools', groups: ['admins'], azp: 'web-app' }),
    );
    const reader = await connect(
      mcpUrl,
      await as.sign({ sub: 'bob', aud: aud(), scope: 'mcp:tools mcp:read' }),
    );
    const nobody = await connect(mcpUrl, await as.sign({ sub: 'carol', aud: aud(), scope: 'mcp:tools' }));
    try {
      const all = await toolNames(admin);
      assert.ok(all.includes('secret_admin') && all.includes('echo') && all.length > 2);
      assert.deepEqual(await toolNames(reader), ['echo']);
      assert.deepEqual(await toolNames(nobody), []);

      const echo = { name: 'echo', arguments: { message: 'hi' } };
      assert.equal((await admin.callTool({ name: 'secret_admin', arguments: {} })).isError ?? false, false);
      assert.ok(!(await reader.callTool(echo)).isError);
      await assert.rejects(reader.callTool({ name: 'secret_admin', arguments: {} }), /Tool \w+ not found/);
      await assert.rejects(nobody.callTool(echo), /Tool \w+ not found/);
    } finally {
      await Promise.all([admin.close(), reader.close(), nobody.close()]);
    }
    const calls = gateway.auditLines.filter((l) => l.rpc_method === 'tools/call');
    const adminCall = calls.find((l) => l.tool === 'secret_admin' && l.sub === 'alice')!;
    assert.equal(adminCall.decision, 'allow');
    assert.equal(adminCall.grant, 'admins');
    assert.equal(adminCall.client_id, 'web-app');
    assert.equal(adminCall.key, undefined);
    const denied = calls.find((l) => l.tool === 'secret_admin' && l.sub === 'bob')!;
    assert.equal(denied.reason, 'ERR_TOOL_DENIED');
    assert.equal(denied.grant, 'readers');
    const nothing = calls.find((l) => l.sub === 'carol')!;
    assert.equal(nothing.reason, 'ERR_TOOL_DENIED');
    assert.equal(nothing.grant, undefined);
  });

  it('never passes the token to the upstream', async () => {
    const token = await as.sign({ sub: 'dave', aud: aud(), scope: 'mcp:tools', groups: ['admins'] });
    const client = await connect(mcpUrl, token);
    await client.listTools();
    await client.close();
    const seen = upstream.received.filter((r) => JSON.stringify(r.headers).includes(token.slice(-20)));
    assert.deepEqual(seen, []);
    assert.ok(upstream.received.length > 0);
    assert.ok(upstream.received.every((r) => r.headers.authorization === undefined));
  });

  it('accepts an API key and a JWT on one gateway, told apart by form', async () => {
    const client = await connect(mcpUrl, KEY);
    assert.deepEqual(await toolNames(client), ['echo']);
    await client.close();
    const bad = await post(mcpUrl, `mcpg_${'x'.repeat(49)}`);
    assert.equal(bad.status, 401);
    const line = await auditFor(bad.headers.get('x-request-id'));
    assert.equal(line.reason, 'ERR_AUTH_MALFORMED');
  });

  it("the official SDK client's OAuth support discovers the server and lists tools", async () => {
    const hitsBefore = as.hits.length;
    const client = new Client({ name: 'sdk-oauth', version: '1.0.0' });
    const authProvider = new ClientCredentialsProvider({
      clientId: 'reader',
      clientSecret: CLIENTS.reader.secret,
      expectedIssuer: as.issuer,
      scope: 'mcp:tools mcp:read',
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider }));
    try {
      assert.deepEqual(await toolNames(client), ['echo']);
    } finally {
      await client.close();
    }
    const hits = as.hits.slice(hitsBefore);
    assert.ok(
      hits.some((h) => h.includes('/.well-known/')),
      `no discovery: ${hits.join(', ')}`,
    );
    assert.ok(hits.includes('/token'));
    const lines = gateway.auditLines.filter((l) => l.sub === 'service-reader');
    assert.ok(lines.some((l) => l.rpc_method === 'tools/list' && l.decision === 'allow'));
    assert.ok(lines.every((l) => l.client_id === 'reader' && l.grant === 'readers'));
  });

  it('binds a session to iss + sub: a new token of the same subject keeps it, another subject gets 404', async () => {
    const claims = { aud: aud(), scope: 'mcp:tools', groups: ['admins'] };
    const opened = await post(mcpUrl, await as.sign({ ...claims, sub: 'erin', jti: 'a' }), 1);
    assert.equal(opened.status, 200);
    const session = opened.headers.get('mcp-session-id')!;
    assert.ok(session);
    const ping = async (sub: string, jti: string) =>
      fetch(mcpUrl, {
        method: 'POST',
        headers: {
          ...JSON_HEADERS,
          'mcp-session-id': session,
          'mcp-protocol-version': '2025-06-18',
          authorization: `Bearer ${await as.sign({ ...claims, sub, jti })}`,
        },
        body: '{"jsonrpc":"2.0","id":2,"method":"ping"}',
      });
    assert.equal((await ping('erin', 'b')).status, 200);
    const stolen = await ping('mallory', 'c');
    assert.equal(stolen.status, 404);
    assert.equal((await auditFor(stolen.headers.get('x-request-id'))).reason, 'ERR_SESSION_NOT_FOUND');
  });

  it('/readyz reports the signing keys', async () => {
    const res = await fetch(`${gateway.url}/readyz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready', oauth: { jwks: 'ok' } });
  });
});

describe('OAuth key rotation and authorization server outage', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  const warnings: { obj: unknown; msg: string | undefined }[] = [];
  const COOLDOWN = 300;

  before(async () => {
    // RFC 8414 discovery only: the gateway must fall back from OpenID Connect discovery.
    as = await startAuthServer({ oidc: false, issuerPath: '/tenant' });
    upstream = await startSdkUpstream();
    const port = await freePort();
    const log = {
      trace() {},
      debug() {},
      info() {},
      warn: (obj: object | string, msg?: string) => void warnings.push({ obj, msg }),
      error() {},
      fatal() {},
    };
    gateway = await startTestGateway(
      configFor(port, upstream.url, as.issuer),
      {},
      {
        listen: `127.0.0.1:${port}`,
        log,
        oauthTuning: { cooldownMs: COOLDOWN, failureCooldownMs: COOLDOWN },
      },
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await as.close();
  });

  const token = (kid?: string) =>
    as.sign(
      { aud: gateway.mcpUrl, scope: 'mcp:tools', groups: ['admins'], jti: String(Math.random()) },
      kid ? { kid } : {},
    );
  const reasonOf = async (answer: { headers: Headers }) =>
    (await waitFor(() => gateway.auditLines.find((l) => l.request_id === answer.headers.get('x-request-id'))))
      .reason;

  it('accepts a token signed by a newly published key (unknown kid) after refetching the JWK set', async () => {
    assert.equal((await post(gateway.mcpUrl, await token())).status, 200);
    const kid = await as.rotate('ES256');
    await new Promise((r) => setTimeout(r, COOLDOWN + 50));
    const jwksBefore = as.hits.filter((h) => h === '/jwks').length;
    const answer = await post(gateway.mcpUrl, await token(kid));
    assert.equal(answer.status, 200);
    assert.equal(as.hits.filter((h) => h === '/jwks').length, jwksBefore + 1);
  });

  it('keeps validating cached keys while the authorization server is down; an unknown kid is refused', async () => {
    as.setDown(true);
    try {
      assert.equal((await post(gateway.mcpUrl, await token('k1'))).status, 200);
      const kid = await as.rotate('RS256');
      await new Promise((r) => setTimeout(r, COOLDOWN + 50));
      const started = Date.now();
      const refused = await post(gateway.mcpUrl, await token(kid));
      assert.ok(Date.now() - started < 5000, 'the refusal waited on the authorization server');
      assert.equal(refused.status, 401);
      assert.match(refused.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      assert.equal(await reasonOf(refused), 'ERR_AUTH_TOKEN_KEYS_UNAVAILABLE');
      assert.ok(warnings.some((w) => /JWK set fetch failed/.test(w.msg ?? '')));
      const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as { oauth: { jwks: string } };
      assert.equal(ready.oauth.jwks, 'stale');
      // Still served from the cache.
      assert.equal((await post(gateway.mcpUrl, await token('k1'))).status, 200);
    } finally {
      as.setDown(false);
    }
  });
});

/** Flips a bit in the signature: the header and claims stay valid. */
function forgeSignature(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const sig = Buffer.from(s, 'base64url');
  sig[0] = sig[0]! ^ 1;
  return `${h}.${p}.${sig.toString('base64url')}`;
}

describe('OAuth with the authorization server down at start', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: TestGateway;

  before(async () => {
    as = await startAuthServer();
    as.setDown(true);
    upstream = await startSdkUpstream();
    const port = await freePort();
    gateway = await startTestGateway(
      configFor(port, upstream.url, as.issuer),
      {},
      { listen: `127.0.0.1:${port}` },
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
    await as.close();
  });

  it('starts anyway, refuses tokens while it cannot get keys, and retries discovery in the background', async () => {
    const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as { oauth: { jwks: string } };
    assert.equal(ready.oauth.jwks, 'unavailable');
    const token = await as.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools', groups: ['admins'] });
    const refused = await post(gateway.mcpUrl, token);
    assert.equal(refused.status, 401);
    const line = await waitFor(() =>
      gateway.auditLines.find((l) => l.request_id === refused.headers.get('x-request-id')),
    );
    assert.equal(line.reason, 'ERR_AUTH_TOKEN_KEYS_UNAVAILABLE');
    // An API key does not depend on the authorization server.
    assert.equal((await post(gateway.mcpUrl, KEY)).status, 200);
    as.setDown(false);
    await waitFor(
      async () => ((await post(gateway.mcpUrl, token)).status === 200 ? true : undefined),
      10_000,
      'discovery retry',
    );
  });
});

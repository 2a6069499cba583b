/**
 * OAuth: the full pipeline with a bearer JWT against the same gateway with an API key. A small
 * authorization server runs in the bench process (jose keys; discovery and the JWK set over HTTP on
 * loopback); the gateway loads the JWK set at start, so the keys are cached throughout.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { CALL, checkCall, compare, cpuRow, HUGE, keyEntry, via } from './measure.ts';
import type { Measured, Scenario } from './measure.ts';
import { throughputRow } from './report.ts';

const RESOURCE = 'https://mcp.bench.example/mcp';

async function startIssuer(): Promise<{ issuer: string; token: string; close(): void }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' };
  let issuer = '';
  const server = createServer((req, res) => {
    const body =
      req.url === '/jwks'
        ? { keys: [jwk] }
        : { issuer, jwks_uri: `${new URL(issuer).origin}/jwks`, token_endpoint: `${issuer}/token` };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/realms/bench`;
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ scope: 'mcp:tools', client_id: 'bench', groups: ['bench'] })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setSubject('bench-subject')
    .setAudience(RESOURCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(privateKey);
  return { issuer, token, close: () => server.close() };
}

export const oauth: Scenario = {
  name: 'oauth',
  title: 'Full pipeline tools/call with a bearer JWT vs an API key (same gateway, JWK set cached)',
  notes:
    'One gateway with one API key and `auth.oauth` (RS256 key from a loopback JWK set, a claim grant ' +
    'allowing `*`, `required_scopes`), audit to /dev/null, memory rate limit; the two targets alternate ' +
    'in the same rounds. A verified token is remembered by its SHA-256 for up to 30 s (never past ' +
    '`exp`), so the JWT rows measure the steady state of a client reusing its token.',
  async run(ctx) {
    const as = await startIssuer();
    try {
      const key = await ctx.key('bench-oauth');
      const gw = await ctx.gateway('oauth', {
        public_url: RESOURCE,
        upstream: { url: ctx.originUrl },
        keys: [keyEntry(key, ['*'])],
        rate_limit: { ...HUGE },
        auth: {
          oauth: {
            issuer: as.issuer,
            required_scopes: ['mcp:tools'],
            grants: [{ when: { claim: 'groups', includes: 'bench' }, allow: ['*'], rate_limit: HUGE }],
          },
        },
        audit: { output: '/dev/null' },
      });
      const k = await via(gw, 'mcpgate, API key', key);
      const j = await via(gw, 'mcpgate, JWT', { label: 'jwt', hash: '', key: as.token });
      await checkCall(k);
      await checkCall(j);
      const [k32, j32] = (await compare(ctx, [k, j], CALL, 32)) as [Measured, Measured];
      const [k1, j1] = (await compare(ctx, [k, j], CALL, 1)) as [Measured, Measured];
      return [
        throughputRow('JWT vs API key, 32 conns', ['key', k32.rps], ['JWT', j32.rps], 0.85),
        cpuRow(['key', k32], ['JWT', j32], 'CPU per request (mcpgate), JWT vs key'),
        throughputRow('JWT vs API key, 1 conn', ['key', k1.rps], ['JWT', j1.rps]),
      ];
    } finally {
      as.close();
    }
  },
};

/**
 * Issue 13: a sidecar configured from the environment alone. A real `mcpgate serve` process, run in
 * a directory without a config file and with no --config, serves OAuth clients from MCPGATE_<PATH>
 * variables; `mcpgate validate` checks the same configuration.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { startAuthServer } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { runCli, startServe } from '../helpers/cli.ts';
import type { ServeProcess } from '../helpers/cli.ts';
import { freePort, waitFor } from '../helpers/net.ts';

const CLIENTS = {
  admin: { secret: 'admin-secret', scopes: ['mcp:tools'], claims: { groups: ['admins'] } },
  reader: { secret: 'reader-secret', scopes: ['mcp:tools'] },
};

describe('an environment-only gateway (no config file)', () => {
  let as: TestAuthServer;
  let upstream: SdkUpstream;
  let gateway: ServeProcess;
  let dir: string;
  let env: Record<string, string>;
  let mcpUrl: string;

  before(async () => {
    as = await startAuthServer({ clients: CLIENTS });
    upstream = await startSdkUpstream();
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-env-'));
    const port = await freePort();
    mcpUrl = `http://127.0.0.1:${port}/mcp`;
    env = {
      MCPGATE_CONFIG: '',
      MCPGATE_LISTEN: `127.0.0.1:${port}`,
      MCPGATE_PUBLIC_URL: mcpUrl,
      MCPGATE_UPSTREAM_URL: upstream.url,
      MCPGATE_AUTH_SESSION_SECRET: 'an-environment-only-session-secret-0123456789',
      MCPGATE_AUTH_OAUTH_ISSUER: as.issuer,
      MCPGATE_AUTH_OAUTH_REQUIRED_SCOPES: '["mcp:tools"]',
      MCPGATE_AUTH_OAUTH_GRANTS: JSON.stringify([
        { name: 'admins', when: { claim: 'groups', includes: 'admins' }, allow: ['*'] },
        { name: 'tools', when: { scope: 'mcp:tools' }, allow: ['echo'] },
      ]),
    };
    gateway = await startServe([], env, { cwd: dir });
  });
  after(async () => {
    await gateway?.stop();
    await upstream.close();
    await as.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('validate checks the environment-only configuration', async () => {
    const ok = await runCli(['validate'], { env, cwd: dir });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /^environment \(MCPGATE_\* variables\): ok \(.*OAuth issuer http:\/\/127\.0\.0\.1/,
    );
    const bad = await runCli(['validate'], {
      env: { ...env, MCPGATE_AUTH_OAUTH_ISSUER: 'ftp://x', MCPGATE_AUTH_OAUTH_GRANTS: '[{' },
      cwd: dir,
    });
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /auth\.oauth\.issuer: must be an http or https URL \(from MCPGATE_AUTH_OAUTH_ISSUER\)/,
    );
    assert.match(bad.stderr, /auth\.oauth\.grants: MCPGATE_AUTH_OAUTH_GRANTS is not valid JSON/);
  });

  it('answers 401 with its metadata, and serves OAuth clients with different grants', async () => {
    const unauthenticated = await fetch(mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    assert.equal(unauthenticated.status, 401);
    assert.equal(
      unauthenticated.headers.get('www-authenticate'),
      `Bearer resource_metadata="http://${new URL(mcpUrl).host}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`,
    );

    const listFor = async (clientId: keyof typeof CLIENTS) => {
      const client = new Client({ name: `env-${clientId}`, version: '1.0.0' });
      const authProvider = new ClientCredentialsProvider({
        clientId,
        clientSecret: CLIENTS[clientId].secret,
        expectedIssuer: as.issuer,
      });
      await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider }));
      try {
        return (await client.listTools()).tools.map((t) => t.name).sort();
      } finally {
        await client.close();
      }
    };
    const admin = await listFor('admin');
    assert.ok(admin.includes('secret_admin') && admin.includes('echo'));
    assert.deepEqual(await listFor('reader'), ['echo']);

    // The audit line of the last request is written when its response has closed, which may be
    // after the client saw the answer: wait for whole lines (the last one may still be arriving).
    const auditLines = () =>
      gateway
        .stdout()
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const seen = (sub: string, grant: string) => auditLines().some((l) => l.sub === sub && l.grant === grant);
    await waitFor(
      () => seen('service-admin', 'admins') && seen('service-reader', 'tools'),
      5000,
      'the audit lines of both OAuth clients',
    );
  });
});

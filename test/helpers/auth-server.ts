/**
 * A test OAuth authorization server on loopback: keys generated with jose, discovery documents and
 * the JWK set over real HTTP, and a token endpoint for the client credentials grant (RFC 8707
 * `resource` becomes the token's `aud`). It can mint any bad token a test needs, rotate in a new
 * key, and go down (connections are cut) to test an outage.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';
import { startTestGateway } from './gateway.ts';
import type { TestGateway, TestGatewayOptions } from './gateway.ts';
import { freePort } from './net.ts';

export interface TestClient {
  readonly secret: string;
  /** Claims added to this client's tokens (e.g. groups). */
  readonly claims?: Record<string, unknown>;
  /** Scopes it may get (all of them when it asks for none). */
  readonly scopes?: readonly string[];
}

export interface AuthServerOptions {
  /** Path part of the issuer (default `/realms/test`). */
  readonly issuerPath?: string;
  /** Serve OpenID Connect discovery (default true); RFC 8414 metadata is always served. */
  readonly oidc?: boolean;
  readonly clients?: Readonly<Record<string, TestClient>>;
}

interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly spki: string;
}

export interface TestAuthServer {
  readonly origin: string;
  readonly issuer: string;
  readonly jwksUri: string;
  /** Requests the server received, by path. */
  readonly hits: string[];
  /** Signs `claims` with the current key (or `kid`'s); defaults fill iss, sub, iat, exp. */
  sign(claims: JWTPayload, options?: { kid?: string; header?: Record<string, unknown> }): Promise<string>;
  /** A key pair that is never published. */
  signUnpublished(claims: JWTPayload): Promise<string>;
  /** `alg: none`. */
  unsigned(claims: JWTPayload): string;
  /** HS256 with the published RSA public key (PEM) as the HMAC secret: the key-confusion attack. */
  hmacWithPublicKey(claims: JWTPayload): Promise<string>;
  /** Generates a new key; published from now on (it becomes the signing key). Returns its kid. */
  rotate(alg?: 'RS256' | 'ES256'): Promise<string>;
  /** While down, every connection is cut (the JWK set and discovery cannot be fetched). */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

async function newKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk, spki: await exportSPKI(publicKey) };
}

export async function startAuthServer(options: AuthServerOptions = {}): Promise<TestAuthServer> {
  const issuerPath = options.issuerPath ?? '/realms/test';
  const oidc = options.oidc ?? true;
  const clients = options.clients ?? {};
  const published: SigningKey[] = [await newKey('k1', 'RS256')];
  let current = published[0]!;
  let down = false;
  const hits: string[] = [];
  let origin = '';
  const issuer = () => origin + issuerPath;
  const now = () => Math.floor(Date.now() / 1000);

  const metadata = () => ({
    issuer: issuer(),
    authorization_endpoint: `${origin}/authorize`,
    token_endpoint: `${origin}/token`,
    jwks_uri: `${origin}/jwks`,
    response_types_supported: ['code'],
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
  });

  async function sign(claims: JWTPayload, opts: { kid?: string; header?: Record<string, unknown> } = {}) {
    const key = opts.kid === undefined ? current : published.find((k) => k.kid === opts.kid)!;
    return signWith(key, claims, opts.header);
  }

  function signWith(key: SigningKey, claims: JWTPayload, header: Record<string, unknown> = {}) {
    const body: JWTPayload = { iss: issuer(), sub: 'subject-1', iat: now(), exp: now() + 300, ...claims };
    for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
    return new SignJWT(body)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header })
      .sign(key.privateKey);
  }

  async function token(form: URLSearchParams, authorization: string | undefined) {
    let id = form.get('client_id') ?? '';
    let secret = form.get('client_secret') ?? '';
    if (authorization?.startsWith('Basic ')) {
      const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      id = decodeURIComponent(decoded.slice(0, colon));
      secret = decodeURIComponent(decoded.slice(colon + 1));
    }
    const client = clients[id];
    if (client === undefined || client.secret !== secret)
      return { status: 401, body: { error: 'invalid_client' } };
    if (form.get('grant_type') !== 'client_credentials')
      return { status: 400, body: { error: 'unsupported_grant_type' } };
    const allowed = client.scopes ?? [];
    const asked = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const scopes = asked.length === 0 ? allowed : asked.filter((s) => allowed.includes(s));
    const access = await sign({
      sub: `service-${id}`,
      client_id: id,
      ...(form.get('resource') ? { aud: form.get('resource')! } : {}),
      ...(scopes.length ? { scope: scopes.join(' ') } : {}),
      ...client.claims,
    });
    return {
      status: 200,
      body: { access_token: access, token_type: 'Bearer', expires_in: 300, scope: scopes.join(' ') },
    };
  }

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.push(path);
    if (down) {
      req.socket.destroy();
      return;
    }
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (path === '/jwks') return json(200, { keys: published.map((k) => k.publicJwk) });
    const isOidc = path.includes('/.well-known/openid-configuration');
    const isOauth = path.includes('/.well-known/oauth-authorization-server');
    if ((isOidc && oidc) || isOauth) return json(200, metadata());
    if (path === '/token' && req.method === 'POST') {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (text += d));
      req.on('end', () => {
        token(new URLSearchParams(text), req.headers.authorization).then(
          ({ status, body }) => json(status, body),
          () => json(500, { error: 'server_error' }),
        );
      });
      return;
    }
    json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    issuer: issuer(),
    jwksUri: `${origin}/jwks`,
    hits,
    sign,
    async signUnpublished(claims) {
      return signWith(await newKey('never-published', 'RS256'), claims);
    },
    unsigned(claims) {
      return new UnsecuredJWT({
        iss: issuer(),
        sub: 'subject-1',
        iat: now(),
        exp: now() + 300,
        ...claims,
      }).encode();
    },
    async hmacWithPublicKey(claims) {
      const body = { iss: issuer(), sub: 'subject-1', iat: now(), exp: now() + 300, ...claims };
      return new SignJWT(body)
        .setProtectedHeader({ alg: 'HS256', kid: current.kid, typ: 'at+jwt' })
        .sign(new TextEncoder().encode(current.spki));
    },
    async rotate(alg = 'ES256') {
      const key = await newKey(`k${published.length + 1}`, alg);
      published.push(key);
      current = key;
      return key.kid;
    },
    setDown(value) {
      down = value;
      if (value) server.closeAllConnections();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A gateway config with OAuth on: one grant allowing every tool to tokens with scope mcp:tools,
 * the gateway on `port` (public_url is its MCP endpoint). `extra` lines are appended (e.g. a
 * `rate_limit:` block).
 */
export function oauthGatewayConfig(
  port: number,
  upstreamUrl: string,
  issuer: string,
  jwksUri: string,
  extra: readonly string[] = [],
): string {
  return [
    `listen: 127.0.0.1:${port}`,
    `public_url: http://127.0.0.1:${port}/mcp`,
    'upstream:',
    `  url: ${upstreamUrl}`,
    'auth:',
    '  session_secret: "0123456789abcdef0123456789abcdef-oauth"',
    '  oauth:',
    `    issuer: ${issuer}`,
    `    jwks_uri: ${jwksUri}`,
    '    grants:',
    '      - name: all',
    '        when: { scope: mcp:tools }',
    '        allow: ["*"]',
    ...extra,
  ].join('\n');
}

/**
 * A gateway with oauthGatewayConfig on a free port (its listen address is that port), with the
 * test logger and OAuth tuning of `options`.
 */
export async function startOAuthGateway(
  upstreamUrl: string,
  issuer: string,
  jwksUri: string,
  extra: readonly string[] = [],
  options: Omit<TestGatewayOptions, 'listen'> = {},
): Promise<TestGateway> {
  const port = await freePort();
  return startTestGateway(
    oauthGatewayConfig(port, upstreamUrl, issuer, jwksUri, extra),
    {},
    {
      ...options,
      listen: `127.0.0.1:${port}`,
    },
  );
}

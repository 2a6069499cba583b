/**
 * RFC 9728 protected-resource metadata, and the WWW-Authenticate challenges that point to it.
 *
 * The document is served at `/.well-known/oauth-protected-resource` and path-inserted at
 * `/.well-known/oauth-protected-resource<path>` (the path of `public_url`, and the gateway's MCP
 * path when a proxy in front maps one to the other). It is public and carries no credentials, so
 * browser clients may read it from any origin (`Access-Control-Allow-Origin: *`, preflight answered).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OAuthConfig } from '../../config/schema.ts';

export const METADATA_PATH = '/.well-known/oauth-protected-resource';

/** A reserved route that also answers CORS preflight (OPTIONS) requests. */
export interface PreflightRoute {
  (req: IncomingMessage, res: ServerResponse): void;
  readonly preflight: true;
}

export interface ResourceMetadata {
  /** The URL published in `resource_metadata="..."`. */
  readonly url: string;
  readonly document: Readonly<Record<string, unknown>>;
  /** Path -> route, for the reserved routes. */
  readonly routes: ReadonlyMap<string, PreflightRoute>;
}

const CORS = Object.freeze({
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': 'mcp-protocol-version, content-type',
  'access-control-max-age': '86400',
});

export function createResourceMetadata(
  publicUrl: string,
  mcpPath: string,
  oauth: OAuthConfig,
): ResourceMetadata {
  const base = new URL(publicUrl);
  const publicPath = base.pathname === '/' ? '' : base.pathname;
  const scopes = new Set<string>(oauth.required_scopes);
  for (const grant of oauth.grants) if (grant.when.scope !== undefined) scopes.add(grant.when.scope);
  const document = Object.freeze({
    resource: publicUrl,
    authorization_servers: oauth.authorization_servers ?? [oauth.issuer],
    ...(scopes.size > 0 ? { scopes_supported: [...scopes] } : {}),
    bearer_methods_supported: ['header'],
    resource_name: oauth.resource_name,
  });
  const body = JSON.stringify(document);
  const length = Buffer.byteLength(body);
  const route = Object.assign(
    (req: IncomingMessage, res: ServerResponse) => {
      for (const [name, value] of Object.entries(CORS)) res.setHeader(name, value);
      if (req.method === 'OPTIONS') {
        res.statusCode = 204;
        res.end();
        return;
      }
      res.statusCode = 200;
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'public, max-age=300');
      res.setHeader('content-length', length);
      res.end(req.method === 'HEAD' ? undefined : body);
    },
    { preflight: true as const },
  );
  const routes = new Map<string, PreflightRoute>([[METADATA_PATH, route]]);
  if (publicPath !== '') routes.set(METADATA_PATH + publicPath, route);
  if (mcpPath !== '/' && mcpPath !== '') routes.set(METADATA_PATH + mcpPath, route);
  return { url: `${base.origin}${METADATA_PATH}${publicPath}`, document, routes };
}

export interface Challenges {
  /** 401 without a credential. */
  readonly missing: Readonly<Record<string, string>>;
  /** 401 with a credential that was refused (`error="invalid_token"`). */
  readonly invalid: Readonly<Record<string, string>>;
  /** 403 for a valid token without the required scopes. */
  readonly insufficientScope: Readonly<Record<string, string>>;
}

/** Scopes are RFC 6749 scope-tokens (checked by the schema), so they need no escaping in quotes. */
export function createChallenges(metadataUrl: string, requiredScopes: readonly string[]): Challenges {
  const base = `Bearer resource_metadata="${metadataUrl}"`;
  const scope = requiredScopes.length > 0 ? `, scope="${requiredScopes.join(' ')}"` : '';
  const header = (value: string) => Object.freeze({ 'www-authenticate': value });
  return Object.freeze({
    missing: header(base + scope),
    invalid: header(`${base}, error="invalid_token"${scope}`),
    insufficientScope: header(`${base}, error="insufficient_scope"${scope}`),
  });
}

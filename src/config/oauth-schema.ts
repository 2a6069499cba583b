/**
 * The `auth.oauth` section: bearer JWTs from the operator's authorization server, and the grants
 * that map their claims to what a token may use. Field names are a stable contract (issue 13).
 */
import { checkHttpUrl } from './http-url.ts';
import { array, duration, object, oneOf, string } from './spec.ts';
import type { Spec } from './spec.ts';
import { resourcePatternProblem } from '../policy/resource-uri.ts';
import { rootPatterns } from './root-patterns.ts';

/** Asymmetric JWS algorithms only: never `none`, never HMAC (a JWKS holds public keys). */
export const OAUTH_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

export const OAUTH_DEFAULTS = Object.freeze({
  algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'] as (typeof OAUTH_ALGORITHMS)[number][],
  clockTolerance: '30s',
  resourceName: 'mcpgate',
});

/** RFC 6749 section 3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

const names = (what: string) =>
  array(string(`A ${what} or a wildcard (\`*\`).`), `${what}s a token matching this grant may use.`, {
    default: [],
  });

/** `rateLimit` is the keys' `rate_limit` spec (passed in to keep one definition). */
export function oauthSpec<R>(rateLimit: Spec<R>) {
  const grant = object(
    {
      name: string('A name for the grant, shown in the audit line (default `grants[<index>]`).', {
        check: (v) =>
          /^[A-Za-z0-9._@:-]{1,64}$/.test(v) ? undefined : 'must be 1-64 characters of A-Z a-z 0-9 . _ @ : -',
      }),
      when: object(
        {
          claim: string(
            'A claim name (a top-level name first, else a dotted path such as `realm_access.roles`).',
          ),
          includes: string('With `claim`: an array claim includes this value, or a string claim equals it.'),
          scope: string(
            "The token's space-delimited `scope`, or its `scp` (array or string), includes this.",
          ),
        },
        'Which tokens this grant is for: `{claim, includes}` or `{scope}`.',
      ),
      allow: names('Tool name'),
      prompts: names('Prompt name'),
      resources: array(
        string('A Resource URI or a wildcard (`*`).', { check: resourcePatternProblem }),
        'Resource URIs a token matching this grant may use.',
        { default: [] },
      ),
      roots: rootPatterns('a token matching this grant'),
      rate_limit: rateLimit,
    },
    'A grant: the first whose `when` matches a token decides what it may use.',
    { required: ['when'] },
  );
  return object(
    {
      issuer: string(
        "The authorization server's issuer; discovery reads `<issuer>/.well-known/openid-configuration`, else `oauth-authorization-server`. Tokens must carry exactly this `iss`.",
        { check: (v) => checkHttpUrl(v) },
      ),
      audience: string('The `aud` a token must carry (RFC 8707). Default: `public_url`.'),
      jwks_uri: string('The JWK set URL; overrides discovery.', { check: (v) => checkHttpUrl(v) }),
      algorithms: array(
        oneOf(OAUTH_ALGORITHMS, 'A JWS algorithm.'),
        'Accepted signature algorithms (never `none`, never HMAC).',
        { default: OAUTH_DEFAULTS.algorithms },
      ),
      clock_tolerance: duration(
        'Allowed clock skew for `exp`, `nbf` and `iat`; at most `5m` (more would accept expired tokens for that long: fix the clocks instead).',
        { default: OAUTH_DEFAULTS.clockTolerance, max: '5m' },
      ),
      required_scopes: array(
        string('A scope.', {
          check: (v) =>
            SCOPE_TOKEN.test(v)
              ? undefined
              : 'must be a scope token (RFC 6749: no spaces, quotes or backslashes)',
        }),
        'Scopes every token must carry (else 403 `insufficient_scope`); published in `scopes_supported`.',
        { default: [] },
      ),
      authorization_servers: array(
        string('An issuer URL.', { check: (v) => checkHttpUrl(v) }),
        'Published in the protected-resource metadata. Default: `[issuer]`.',
      ),
      resource_name: string('`resource_name` in the protected-resource metadata.', {
        default: OAUTH_DEFAULTS.resourceName,
      }),
      grants: array(grant, 'Claim grants, first match wins; a token matching none may use nothing.', {
        default: [],
      }),
    },
    'OAuth 2.1 bearer tokens (JWTs) from an authorization server, beside API keys.',
    { optional: true, required: ['issuer'] },
  );
}

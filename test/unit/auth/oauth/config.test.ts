/** The `auth.oauth` config: fixed names, safe defaults, and the checks that span fields. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssue, parseConfigText } from '../../../../src/config/load.ts';

const BASE = ['upstream:', '  url: http://127.0.0.1:3000/mcp'];
const parse = (...lines: string[]) => parseConfigText([...BASE, ...lines].join('\n'), {}, Date.now());
const errors = (...lines: string[]) =>
  parse(...lines)
    .issues.filter((i) => i.severity === 'error')
    .map(formatIssue);

describe('auth.oauth config', () => {
  it('fills the defaults', () => {
    const { config, issues } = parse(
      'public_url: https://mcp.example.com/mcp',
      'auth:',
      '  oauth:',
      '    issuer: https://auth.example.com/realms/main',
    );
    assert.ok(config, JSON.stringify(issues));
    const oauth = config.auth.oauth!;
    assert.deepEqual(oauth.algorithms, ['RS256', 'ES256', 'PS256', 'EdDSA']);
    assert.equal(oauth.clock_tolerance, 30_000);
    assert.deepEqual(oauth.required_scopes, []);
    assert.deepEqual(oauth.grants, []);
    assert.equal(oauth.audience, undefined);
    assert.deepEqual(
      issues.map(formatIssue),
      ['warning: auth.oauth.grants: no grants: every token may use nothing'],
      'no "no keys configured" warning when OAuth is on',
    );
  });

  it('refuses a clock_tolerance over 5m (an expired token would pass for that long)', () => {
    const at = (tolerance: string) =>
      errors(
        'public_url: https://mcp.example.com/mcp',
        'auth:',
        '  oauth:',
        '    issuer: https://auth.example.com',
        `    clock_tolerance: ${tolerance}`,
      );
    assert.deepEqual(at('5m'), []);
    assert.deepEqual(at('0s'), []);
    assert.deepEqual(at('301s'), ['auth.oauth.clock_tolerance: must be at most 5m']);
    assert.deepEqual(at('24h'), ['auth.oauth.clock_tolerance: must be at most 5m']);
  });

  it('refuses none and HMAC algorithms', () => {
    const out = errors(
      'public_url: https://mcp.example.com/mcp',
      'auth:',
      '  oauth:',
      '    issuer: https://auth.example.com',
      '    algorithms: [RS256, none, HS256]',
    );
    assert.equal(out.length, 2);
    assert.match(out[0]!, /^auth\.oauth\.algorithms\[1\]: must be one of: RS256/);
    assert.match(out[1]!, /^auth\.oauth\.algorithms\[2\]: must be one of: RS256/);
  });

  it('needs public_url, one form of `when`, and scope tokens without quotes, all reported at once', () => {
    assert.deepEqual(
      errors(
        'auth:',
        '  oauth:',
        '    issuer: https://auth.example.com',
        "    required_scopes: ['a\"b']",
        '    grants:',
        '      - when: { scope: s, claim: groups, includes: x }',
        '      - when: { claim: groups }',
        '      - allow: ["*"]',
      ),
      [
        'auth.oauth.required_scopes[0]: must be a scope token (RFC 6749: no spaces, quotes or backslashes)',
        'auth.oauth.grants[2].when: is required',
        'public_url: is required with auth.oauth (it is the resource identifier clients ask tokens for)',
        'auth.oauth.grants[0].when: use either {scope} or {claim, includes}',
        'auth.oauth.grants[1].when: needs {scope: <scope>} or {claim: <name>, includes: <value>}',
      ],
    );
  });

  it('refuses an issuer that is not an http(s) URL, and allow_unauthenticated beside OAuth', () => {
    assert.deepEqual(
      errors(
        'public_url: https://mcp.example.com/mcp',
        'auth:',
        '  allow_unauthenticated: true',
        '  oauth:',
        '    issuer: ftp://auth.example.com',
      ),
      [
        'auth.oauth.issuer: must be an http or https URL',
        'auth.allow_unauthenticated: cannot be combined with auth.oauth',
      ],
    );
  });
});

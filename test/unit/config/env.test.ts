/** Configuration from MCPGATE_<PATH> variables: names, values, precedence and problems. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { envFields, envName } from '../../../src/config/env.ts';
import { formatIssue, parseConfigEnv, parseConfigText } from '../../../src/config/load.ts';

const NOW = Date.now();

describe('configuration from the environment', () => {
  it('names each field MCPGATE_<PATH>, one variable per field', () => {
    assert.equal(envName(['upstream', 'url']), 'MCPGATE_UPSTREAM_URL');
    assert.equal(envName(['auth', 'oauth', 'grants']), 'MCPGATE_AUTH_OAUTH_GRANTS');
    const fields = envFields();
    const names = fields.map((f) => f.name);
    assert.equal(new Set(names).size, names.length, 'two fields share a variable');
    for (const wanted of [
      'MCPGATE_UPSTREAM_URL',
      'MCPGATE_PUBLIC_URL',
      'MCPGATE_AUTH_OAUTH_ISSUER',
      'MCPGATE_AUTH_OAUTH_GRANTS',
      'MCPGATE_KEYS',
      'MCPGATE_RATE_LIMIT_REDIS_URL',
    ])
      assert.ok(names.includes(wanted), wanted);
    assert.ok(
      !names.some((n) => n.startsWith('MCPGATE_KEYS_')),
      'fields inside list items come with their list',
    );
  });

  it('builds a whole config from the environment alone: text, numbers, booleans, JSON', () => {
    const { config, issues } = parseConfigEnv(
      {
        MCPGATE_UPSTREAM_URL: 'http://127.0.0.1:3000/mcp',
        MCPGATE_PUBLIC_URL: 'https://mcp.example.com/mcp',
        MCPGATE_UPSTREAM_TIMEOUT: '5s',
        MCPGATE_RATE_LIMIT_CAPACITY: '7',
        MCPGATE_METRICS_ENABLED: 'false',
        MCPGATE_UPSTREAM_HEADERS: '{"Authorization":"Bearer upstream"}',
        MCPGATE_AUTH_OAUTH_ISSUER: 'https://auth.example.com/realms/main',
        MCPGATE_AUTH_OAUTH_REQUIRED_SCOPES: '["mcp:tools"]',
        MCPGATE_AUTH_OAUTH_GRANTS: '[{"when":{"scope":"mcp:tools"},"allow":["search"]}]',
        UNRELATED: 'x',
      },
      NOW,
    );
    assert.deepEqual(issues, []);
    assert.ok(config);
    assert.equal(config.upstream.url, 'http://127.0.0.1:3000/mcp');
    assert.equal(config.upstream.timeout, 5000);
    assert.equal(config.rate_limit.capacity, 7);
    assert.equal(config.metrics.enabled, false);
    assert.deepEqual(config.upstream.headers, { Authorization: 'Bearer upstream' });
    assert.equal(config.auth.oauth?.grants[0]?.allow[0], 'search');
  });

  it('lets a variable win over the file, and merges a mapping with the file', () => {
    const { config } = parseConfigText(
      'upstream:\n  url: http://file/mcp\n  timeout: 9s\nauth:\n  allow_unauthenticated: true\n',
      { MCPGATE_UPSTREAM_URL: 'http://env/mcp', MCPGATE_AUTH: '{"session_secret":"' + 's'.repeat(40) + '"}' },
      NOW,
    );
    assert.equal(config?.upstream.url, 'http://env/mcp');
    assert.equal(config?.upstream.timeout, 9000);
    assert.equal(config?.auth.allow_unauthenticated, true);
    assert.equal(config?.auth.session_secret, 's'.repeat(40));
  });

  it('names the variable a bad value came from, reports bad JSON, and warns of a misspelt variable', () => {
    const { config, issues } = parseConfigEnv(
      {
        MCPGATE_UPSTREAM_URL: 'not a url',
        MCPGATE_KEYS: '[{"label":"a"',
        MCPGATE_UPSTREAM_URLL: 'http://x/mcp',
        MCPGATE_KEY: 'a client-side variable, not a field',
      },
      NOW,
    );
    assert.equal(config, undefined);
    assert.deepEqual(issues.map(formatIssue), [
      'keys: MCPGATE_KEYS is not valid JSON',
      'warning: MCPGATE_UPSTREAM_URLL: not a config field (ignored)',
      'upstream.url: must be an absolute http or https URL (from MCPGATE_UPSTREAM_URL)',
      'warning: keys: no keys configured: every request will be refused (run `mcpgate keygen`)',
    ]);
  });
});

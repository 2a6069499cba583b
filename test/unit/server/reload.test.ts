/** Which settings a reload applies live, and which keep their running value until a restart. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/schema.ts';
import { effectiveConfig } from '../../../src/server/reload.ts';

const HASH = 'a'.repeat(64);
const load = (text: string): Config => {
  const { config, issues } = parseConfigText(text, {}, Date.now());
  assert.ok(config, JSON.stringify(issues));
  return config;
};
const base = (extra: string) =>
  `upstream:\n  url: http://127.0.0.1:3000/mcp\nauth:\n  session_secret: "${'s'.repeat(32)}"\n${extra}`;

describe('effectiveConfig', () => {
  it('takes keys, policy and rate-limit buckets from the new file; reports and keeps the rest', () => {
    const running = load(base(`keys:\n  - label: a\n    hash: "${HASH}"\n`));
    const next = load(
      base(
        `keys:\n  - label: b\n    hash: "${'b'.repeat(64)}"\n    allow: [x]\n` +
          'policy:\n  unknown_methods: allow\n' +
          'rate_limit:\n  capacity: 5\n  backend: memory\n  on_store_error: allow\n',
      )
        .replace('127.0.0.1:3000', '127.0.0.1:3001')
        .replace(`"${'s'.repeat(32)}"`, `"${'t'.repeat(32)}"`) + 'listen: 0.0.0.0:9000\n',
    );
    const { config, restart } = effectiveConfig(running, next);
    assert.deepEqual(
      config.keys.map((k) => k.label),
      ['b'],
    );
    assert.equal(config.policy.unknown_methods, 'allow');
    assert.equal(config.rate_limit.capacity, 5);
    assert.equal(config.rate_limit.on_store_error, 'deny');
    assert.equal(config.listen, '127.0.0.1:8080');
    assert.equal(config.upstream.url, 'http://127.0.0.1:3000/mcp');
    assert.equal(config.auth.session_secret, 's'.repeat(32));
    assert.deepEqual(restart.sort(), [
      'auth.session_secret',
      'listen',
      'rate_limit.on_store_error',
      'upstream.url',
    ]);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.rate_limit));
  });

  it('reports nothing when only live settings changed', () => {
    const running = load(base(`keys:\n  - label: a\n    hash: "${HASH}"\n`));
    const next = load(base(`keys:\n  - label: a\n    hash: "${HASH}"\n    disabled: true\n`));
    assert.deepEqual(effectiveConfig(running, next).restart, []);
  });
});

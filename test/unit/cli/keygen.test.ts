import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { CommanderError } from 'commander';
import { registerKeygen } from '../../../src/cli/keygen.ts';
import { hasValidChecksum, mintKey } from '../../../src/auth/key-format.ts';
import { createKeyring } from '../../../src/auth/keyring.ts';
import { parseConfigText } from '../../../src/config/load.ts';
import { ALLOW_ALL } from '../../../src/policy/grants.ts';
import { fakeIo, run } from './fake-io.ts';

const KEY = /mcpg_[0-9A-Za-z]{49}/g;
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** The printed key (exactly one occurrence) and the YAML snippet (from the first "  - label" line). */
function parseOutput(out: string): { key: string; snippet: string } {
  const keys = out.match(KEY) ?? [];
  assert.equal(keys.length, 1, 'the key is printed exactly once');
  const start = out.indexOf('  - label:');
  assert.ok(start > 0, 'a snippet is printed');
  return { key: keys[0] as string, snippet: out.slice(start) };
}

function configWith(snippet: string) {
  return parseConfigText(`upstream: {url: "http://127.0.0.1:9/mcp"}\nkeys:\n${snippet}`, {}, Date.now());
}

describe('mcpgate keygen', () => {
  it('prints a well-formed key and a snippet whose hash is the SHA-256 of that key', async () => {
    const io = await run(registerKeygen, ['keygen', '--label', 'ci-bot']);
    assert.equal(io.code, 0);
    assert.equal(io.err, '');
    const { key, snippet } = parseOutput(io.out);
    assert.ok(hasValidChecksum(key));
    assert.ok(!snippet.includes(key), 'the snippet holds only the hash');
    const entries = parseYaml(snippet) as Array<Record<string, unknown>>;
    assert.deepEqual(entries, [{ label: 'ci-bot', hash: `sha256:${sha256(key)}`, allow: [] }]);
    assert.match(snippet, /^ {4}hash: "sha256:[0-9a-f]{64}"$/m);
  });

  it('the snippet pastes under `keys:`, validates, and the key then authenticates', async () => {
    const io = await run(registerKeygen, [
      'keygen',
      '--label',
      '@ops.team_1-x',
      '--allow',
      'echo, files.*,,echo',
    ]);
    const { key, snippet } = parseOutput(io.out);
    const { config, issues } = configWith(snippet);
    assert.ok(config, JSON.stringify(issues));
    assert.deepEqual(issues, []);
    const [entry] = config.keys;
    assert.equal(entry?.label, '@ops.team_1-x');
    assert.deepEqual(entry?.allow, ['echo', 'files.*']);
    const keyring = createKeyring(config.keys, () => ALLOW_ALL, { now: Date.now });
    const r = keyring.authenticate(key);
    assert.ok(r.ok);
    assert.equal(r.principal.name, '@ops.team_1-x');
  });

  it('allows nothing unless --allow says otherwise', async () => {
    const { snippet } = parseOutput((await run(registerKeygen, ['keygen', '--label', 'x'])).out);
    assert.deepEqual(configWith(snippet).config?.keys[0]?.allow, []);
  });

  it('two runs never print the same key', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { key } = parseOutput((await run(registerKeygen, ['keygen', '--label', 'x'])).out);
      seen.add(key);
    }
    assert.equal(seen.size, 20);
  });

  it('draws its 32 bytes from io.random (the OS CSPRNG in production)', async () => {
    const asked: number[] = [];
    const io = fakeIo({ random: (n) => (asked.push(n), Buffer.alloc(n, 0xab)) });
    await run(registerKeygen, ['keygen', '--label', 'x', '--json'], io);
    assert.deepEqual(asked, [32]);
    assert.equal((JSON.parse(io.out) as { key: string }).key, mintKey(Buffer.alloc(32, 0xab)));
  });

  it('--json prints exactly one object {label, key, hash}', async () => {
    const io = await run(registerKeygen, ['keygen', '--label', 'ci-bot', '--json', '--allow', 'echo']);
    assert.equal(io.code, 0);
    assert.ok(io.out.endsWith('}\n'));
    assert.equal(io.out.trim().split('\n').length, 1);
    const obj = JSON.parse(io.out) as Record<string, string>;
    assert.deepEqual(Object.keys(obj), ['label', 'key', 'hash']);
    assert.equal(obj.label, 'ci-bot');
    assert.ok(hasValidChecksum(obj.key as string));
    assert.equal(obj.hash, `sha256:${sha256(obj.key as string)}`);
  });

  it('refuses a label the config would refuse (exit 1, nothing minted)', async () => {
    for (const label of ['', 'has space', 'x'.repeat(65), 'a"b', 'a:b', 'ключ']) {
      let minted = false;
      const io = fakeIo({ random: (n) => ((minted = true), Buffer.alloc(n)) });
      await run(registerKeygen, ['keygen', '--label', label], io);
      assert.equal(io.code, 1, label);
      assert.equal(io.out, '');
      assert.match(io.err, /--label/);
      assert.equal(minted, false);
    }
  });

  it('--label is required', async () => {
    await assert.rejects(
      run(registerKeygen, ['keygen']),
      (err: unknown) => err instanceof CommanderError && err.code === 'commander.missingMandatoryOptionValue',
    );
  });

  it('names that need quoting in YAML still round-trip', async () => {
    const io = await run(registerKeygen, ['keygen', '--label', 'q', '--allow', '*,a: b,#x,"y"']);
    const { snippet } = parseOutput(io.out);
    const { config, issues } = configWith(snippet);
    assert.ok(config, JSON.stringify(issues));
    assert.deepEqual(config.keys[0]?.allow, ['*', 'a: b', '#x', '"y"']);
  });
});

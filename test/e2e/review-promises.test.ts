/**
 * Review from the README's side: each promise the README makes a user, checked against the running
 * gateway. `hole:` tests show a promise the gateway did not keep (and fail without its fix);
 * `holds:` tests pin a promise that held but that nothing tested, where losing it would matter.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey } from '../../src/auth/key-format.ts';
import { parseConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { lockfileOf, serializeLockfile } from '../../src/pinning/lockfile.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { keyedConfig } from '../helpers/raw-http.ts';

const SECRET = mintKey(randomBytes(32));

function configOf(yaml: string): Config {
  const { config, issues } = parseConfigText(yaml, {}, Date.now());
  assert.ok(config, JSON.stringify(issues));
  return config;
}

/**
 * README, Reloading the config: `pinning` is applied at once ("the lockfile is read again; with the
 * HTTP+SSE upstream transport it needs a restart"), and a setting that needs a restart "keeps its
 * running value and is logged: changed, but applies only after a restart". With
 * `upstream.transport: sse` the pinning is built once with the stream matcher, so a reload that
 * changed it (`on_change: warn` -> `hide`, another lockfile) kept the old pinning, yet the reload
 * reported nothing needing a restart and said `config reloaded`, and the config it reported running
 * named the new pinning: an operator switching from the report-only rollout to `hide` was told it
 * applied while changed and unknown tools kept being listed and called.
 */
describe('a reload with the HTTP+SSE upstream transport and pinning', () => {
  let dir: string;
  let g: TestGateway;
  const yaml = (onChange: string, lockfile: string) =>
    keyedConfig('http://127.0.0.1:9/sse', SECRET, {
      extra: {
        upstream: { url: 'http://127.0.0.1:9/sse', transport: 'sse' },
        pinning: { lockfile, on_change: onChange },
      },
    });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcpgate-promises-'));
    const lock = serializeLockfile(
      lockfileOf({ tools: [{ name: 'search', inputSchema: { type: 'object' } }], prompts: [] }),
    );
    writeFileSync(join(dir, 'a.json'), lock);
    writeFileSync(join(dir, 'b.json'), lock);
    g = await startTestGateway(yaml('warn', join(dir, 'a.json')));
  });
  after(async () => {
    await g.close(100);
    rmSync(dir, { recursive: true, force: true });
  });

  it('hole: a changed pinning is reported as needing a restart, failed before: "config reloaded", nothing to restart', async () => {
    const outcome = await g.runtime.reload(configOf(yaml('hide', join(dir, 'b.json'))));
    assert.equal(outcome.applied, true);
    assert.deepEqual(outcome.restart.filter((p) => p.startsWith('pinning')).sort(), [
      'pinning.lockfile',
      'pinning.on_change',
    ]);
    // The running config says what runs: the pinning read at start.
    assert.equal(g.currentConfig().pinning?.on_change, 'warn');
    assert.equal(g.currentConfig().pinning?.lockfile, join(dir, 'a.json'));
  });
});

/** Errors an operator meets first, from the real `mcpgate` command: each says what to do. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runCli } from '../helpers/cli.ts';

const HASH = 'a'.repeat(64);

describe('mcpgate command errors', () => {
  let dir: string;
  let holder: Server;
  let port: number;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-cli-'));
    holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    port = (holder.address() as AddressInfo).port;
  });
  after(() => holder.close());

  const config = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  it('names the address in use and how to change it, and exits 1', async () => {
    const path = await config(
      'busy.yaml',
      `listen: 127.0.0.1:${port}\nupstream:\n  url: http://127.0.0.1:9/mcp\nauth:\n  allow_unauthenticated: true\n`,
    );
    const { code, stderr } = await runCli(['serve', '--config', path, '--log-level', 'silent']);
    assert.equal(code, 1);
    assert.match(
      stderr,
      new RegExp(
        `^mcpgate: cannot start: 127\\.0\\.0\\.1:${port} is already in use \\(.*--listen, MCPGATE_LISTEN`,
        'm',
      ),
    );
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  });

  it('--listen and MCPGATE_LISTEN expect HOST:PORT', async () => {
    const path = await config(
      'ok.yaml',
      `upstream:\n  url: http://127.0.0.1:9/mcp\nauth:\n  allow_unauthenticated: true\n`,
    );
    const flag = await runCli(['serve', '--config', path, '--listen', '8080']);
    assert.equal(flag.code, 1);
    assert.equal(
      flag.stderr,
      '--listen expects HOST:PORT (e.g. 127.0.0.1:8080 or 0.0.0.0:8080), got "8080"\n',
    );
    const env = await runCli(['serve', '--config', path], { env: { MCPGATE_LISTEN: 'localhost' } });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /^MCPGATE_LISTEN expects HOST:PORT/);
  });

  it('validate reports schema and cross-field problems in one run, and exits 1', async () => {
    const path = await config(
      'bad.yaml',
      [
        'upstream:',
        '  url: http://127.0.0.1:9/mcp',
        '  timout: 5s',
        'rate_limit:',
        '  backend: redis',
        'keys:',
        '  - label: a',
        `    hash: "${HASH}"`,
        '  - label: a',
        `    hash: "${HASH}"`,
        '    expires: soon',
        '',
      ].join('\n'),
    );
    const { code, stdout, stderr } = await runCli(['validate', '--config', path]);
    assert.equal(code, 1);
    assert.equal(stdout, '');
    const lines = stderr.trim().split('\n');
    assert.deepEqual(
      lines
        .slice(0, -1)
        .map((l) => l.split(':')[0])
        .sort(),
      ['keys[1].expires', 'keys[1].hash', 'keys[1].label', 'rate_limit.redis.url', 'upstream.timout'],
    );
    assert.equal(lines.at(-1), `${path}: 5 problem(s)`);
  });

  it('a usage error (unknown option) exits 1', async () => {
    const { code, stderr } = await runCli(['validate', '--bogus']);
    assert.equal(code, 1);
    assert.match(stderr, /unknown option '--bogus'/);
  });

  const OLD_NODE = '/usr/bin/node';
  const oldVersion = existsSync(OLD_NODE)
    ? execFileSync(OLD_NODE, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim()
    : undefined;
  const tooOld =
    oldVersion !== undefined &&
    (([major, minor]) => major! < 22 || (major === 22 && minor! < 18))(oldVersion.split('.').map(Number));
  it(
    'on a Node older than 22.18, prints one line naming the version needed and how to get it',
    { skip: tooOld ? false : `needs a Node below 22.18 at ${OLD_NODE} (found ${oldVersion ?? 'none'})` },
    () => {
      const run = spawnSync(OLD_NODE, [BIN, '--version'], { encoding: 'utf8' });
      assert.equal(run.status, 1);
      assert.equal(run.stdout, '');
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(`needs Node >= 22\\.18 \\(this is v${oldVersion!.replace(/\./g, '\\.')}\\)`),
      );
      assert.match(run.stderr, /npm ci/);
    },
  );
});

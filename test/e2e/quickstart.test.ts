/**
 * The README's quick start ("Locked down in 30 seconds"), run as written: its blocks are extracted
 * from README.md at test time (never copied here) and run with bash in an empty directory.
 *
 * What the test substitutes, and only that, because a person does it by hand or the machine differs:
 * - `npx mcpgate` finds this checkout, linked into the directory's node_modules (as `npm i mcpgate` would);
 * - the pasted YAML gets the hash step 1 printed, and `upstream.url` the test's MCP server (a real SDK
 *   server on a free port, standing for "your MCP server");
 * - `MCPGATE_LISTEN` picks a free port instead of 8080, and step 4's URL uses it;
 * - step 4's `export MCPGATE_KEY=...` gets the key step 1 printed;
 * - `mcpgate serve` runs in the background, and the test stops it at the end.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { freePort, waitFor } from '../helpers/net.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Block {
  readonly lang: string;
  readonly text: string;
}

/** The fenced blocks of one README section (from its heading to the next `## `). */
function sectionBlocks(readme: string, heading: string): Block[] {
  const start = readme.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has a "## ${heading}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/^```(\w*)\n([^]*?)^```$/gm)].map((m) => ({ lang: m[1]!, text: m[2]! }));
}

describe('README quick start, run as written', () => {
  let upstream: SdkUpstream;
  let dir: string;
  let serve: ChildProcess | undefined;
  before(async () => {
    upstream = await startSdkUpstream();
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-quickstart-'));
    await mkdir(join(dir, 'node_modules', '.bin'), { recursive: true });
    await symlink(ROOT, join(dir, 'node_modules', 'mcpgate'));
    await symlink(join(ROOT, 'bin', 'mcpgate.js'), join(dir, 'node_modules', '.bin', 'mcpgate'));
  });
  after(async () => {
    if (serve?.pid !== undefined && serve.exitCode === null) {
      const exited = new Promise((r) => serve!.once('exit', r));
      process.kill(-serve.pid, 'SIGTERM');
      await exited;
    }
    await upstream.close();
  });

  it('every block runs, and the client in step 4 gets through the gateway with the minted key', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const blocks = sectionBlocks(readme, 'Locked down in 30 seconds');
    const shells = blocks.filter((b) => b.lang === 'sh');
    const yaml = blocks.filter((b) => b.lang === 'yaml');
    assert.equal(shells.length, 3, 'steps 1, 3 and 4 are shell blocks');
    assert.equal(yaml.length, 1, 'step 2 is the YAML block');
    const [mint, start, client] = shells as [Block, Block, Block];

    // Every variable the blocks read is set by an earlier step (or by the shell).
    const all = shells.map((b) => b.text).join('\n') + yaml[0]!.text;
    const used = new Set([...all.matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!));
    const set = new Set([...all.matchAll(/^export ([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!));
    for (const name of used) assert.ok(set.has(name), `$${name} is used but no step sets it`);

    const env = {
      ...process.env,
      PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
    };
    const bash = (script: string) =>
      spawnSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: dir, env, encoding: 'utf8' });

    // Step 1: mint a key.
    const minted = bash(mint.text);
    assert.equal(minted.status, 0, minted.stderr);
    const key = /^\s+(mcpg_[0-9A-Za-z]{49})$/m.exec(minted.stdout)?.[1];
    const hash = /hash: "(sha256:[0-9a-f]{64})"/.exec(minted.stdout)?.[1];
    assert.ok(key && hash, `step 1 printed a key and its hash:\n${minted.stdout}`);

    // Step 2: paste it into mcpgate.yaml.
    const pasted = yaml[0]!.text
      .replace(/sha256:[0-9a-f]{64}/, hash)
      .replace(/url: http:\/\/127\.0\.0\.1:3000\/mcp/, `url: ${upstream.url}`);
    assert.notEqual(pasted, yaml[0]!.text);
    assert.ok(pasted.includes(upstream.url), 'the YAML names an upstream URL the test can replace');
    await writeFile(join(dir, 'mcpgate.yaml'), pasted);

    // Step 3: the session secret, validate, serve (in the background).
    const port = await freePort();
    let err = '';
    serve = spawn('bash', ['-euo', 'pipefail', '-c', start.text], {
      cwd: dir,
      env: { ...env, MCPGATE_LISTEN: `127.0.0.1:${port}` },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: bash, npx and mcpgate are stopped together.
      detached: true,
    });
    serve.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    let out = '';
    serve.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(
      () => {
        if (serve!.exitCode !== null) throw new Error(`step 3 exited ${serve!.exitCode}:\n${out}\n${err}`);
        return /listening on http/.test(err) || undefined;
      },
      20_000,
      'step 3 to serve',
    );
    assert.match(out, /mcpgate\.yaml: ok/, 'validate passed first');

    // Step 4: the client, with the key from step 1.
    const script = client.text
      .replace(/^export MCPGATE_KEY=.*$/m, `export MCPGATE_KEY='${key}'`)
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`);
    // Not spawnSync: the test's upstream runs in this process and must keep answering.
    const answer = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: dir, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(answer.status, 0, answer.stderr);
    assert.match(answer.stdout, /"serverInfo":\{"name":"test-upstream"/, answer.stdout);
    assert.ok(upstream.rpcMethods().includes('initialize'), 'the upstream answered through the gateway');
    // The audit line (stdout of serve) names the key minted in step 1.
    await waitFor(() => /"key":"laptop"/.test(out) || undefined, 3000, 'the audit line');
  });
});

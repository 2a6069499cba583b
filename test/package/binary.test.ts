// Builds the single executable the way the Dockerfile's build stage does (`npm run build:bin`, ~10 s,
// in a copy of only what the Dockerfile copies, with node_modules standing in for `npm ci`), copies
// it alone into another temp dir, and runs it there with PATH=/usr/bin:/bin and nothing else: no
// node, no node_modules, no sources. Then it puts the executable in front of a real MCP server and
// drives it with the real MCP SDK client. With MCPGATE_TEST_BINARY set it tests that file instead of
// building one (the release workflow tests the very executable it ships).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, cp, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { freePort, waitFor } from '../helpers/net.ts';
import { startEverything } from '../helpers/everything.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLEAN_ENV = { PATH: '/usr/bin:/bin' };
/** What the Dockerfile's build stage copies (test/package/dockerfile.test.ts checks the same list). */
const DOCKER_CONTEXT = ['package.json', 'package-lock.json', 'scripts', 'src'];
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

let dir = '';
let bin = '';
const children: ChildProcess[] = [];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], timeout = 15_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(bin, args, { cwd: dir, env: CLEAN_ENV, timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Spawns a long-running process and collects its output; killed in after(). */
function start(command: string, args: string[], env: Record<string, string>) {
  const child = spawn(command, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { stdout: '', stderr: '', exited: false };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  child.on('exit', () => (out.exited = true));
  return out;
}

/** The JSON lines of a log stream. */
function records(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function keygen(label: string): Promise<{ label: string; key: string; hash: string }> {
  const r = await run(['keygen', '--label', label, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { label: string; key: string; hash: string };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpgate-bin-'));
  bin = join(dir, 'mcpgate');
  // The release workflow builds first and tests the very file it ships (MCPGATE_TEST_BINARY).
  const given = process.env.MCPGATE_TEST_BINARY;
  if (given !== undefined && given !== '') {
    await copyFile(given, bin);
    return;
  }
  const context = await mkdtemp(join(tmpdir(), 'mcpgate-context-'));
  try {
    for (const path of DOCKER_CONTEXT) await cp(join(ROOT, path), join(context, path), { recursive: true });
    await symlink(join(ROOT, 'node_modules'), join(context, 'node_modules'));
    const result = await new Promise<Result>((resolve) => {
      execFile(
        process.execPath,
        ['scripts/build-bin.ts'],
        { cwd: context, timeout: 240_000, encoding: 'utf8', maxBuffer: 16 * 2 ** 20 },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr: stderr || String(err ?? '') }),
      );
    });
    if (result.code !== 0) {
      throw new Error(`building the executable failed:\n${result.stdout}\n${result.stderr}`);
    }
    await copyFile(join(context, 'dist/mcpgate'), bin);
  } finally {
    await rm(context, { recursive: true, force: true });
  }
});

after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await once(child, 'exit');
      clearTimeout(timer);
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('--version prints the package version, and nothing else', async () => {
  const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = await run(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${version}\n`);
  // Nothing on stderr: a code cache made under other V8 flags than the executable's execArgv would
  // be rejected with a warning at every start (scripts/build-bin.ts).
  assert.equal(r.stderr, '');
});

test('an unknown command fails with exit 1', async () => {
  const r = await run(['no-such-command']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no-such-command/);
});

test('keygen --json prints {label, key, hash} with hash = sha256 of the key; each key is new', async () => {
  const a = await keygen('ci');
  const b = await keygen('ci');
  assert.deepEqual(Object.keys(a).sort(), ['hash', 'key', 'label']);
  assert.equal(a.label, 'ci');
  assert.match(a.hash, /^sha256:[0-9a-f]{64}$/);
  assert.equal(a.hash, `sha256:${sha256(a.key)}`);
  assert.ok(a.key.length >= 32, 'a key long enough to resist guessing');
  assert.notEqual(a.key, b.key);
});

test('keygen prints the key once and a YAML snippet holding its hash', async () => {
  const r = await run(['keygen', '--label', 'x']);
  assert.equal(r.code, 0, r.stderr);
  const hex = /hash: "sha256:([0-9a-f]{64})"/.exec(r.stdout)?.[1];
  assert.ok(hex, `no hash line in:\n${r.stdout}`);
  assert.match(r.stdout, /label: "?x"?/);
  // The key is the one token of the output whose SHA-256 is the printed hash, and it appears once.
  const tokens = r.stdout.split(/[\s"'`]+/).filter(Boolean);
  const keys = tokens.filter((t) => sha256(t) === hex);
  assert.equal(keys.length, 1, 'the key is printed exactly once');
});

test('validate --config: ok for a good config, every problem with its path for a bad one', async () => {
  const hash = `sha256:${sha256('a key for validate')}`;
  const good = join(dir, 'good.yaml');
  await writeFile(
    good,
    `listen: 127.0.0.1:8080\nupstream:\n  url: http://127.0.0.1:9/mcp\nkeys:\n  - label: test\n    hash: "${hash}"\n    allow: ["*"]\n`,
  );
  const ok = await run(['validate', '--config', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /ok/);

  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, `listen: nowhere\nupstream:\n  url: ftp://x\n`);
  const no = await run(['validate', '--config', bad]);
  assert.equal(no.code, 1);
  assert.match(no.stderr, /^upstream\.url: /m);
  assert.match(no.stderr, /^listen: /m);
});

test('serve: the executable guards a real MCP server for a real MCP client, and audits to stdout', async (t) => {
  const upstream = await startEverything('streamableHttp');
  t.after(() => upstream.close());

  const { key, hash } = await keygen('test');
  const port = await freePort();
  const config = join(dir, 'serve.yaml');
  await writeFile(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      'upstream:',
      `  url: ${upstream.url}`,
      'keys:',
      '  - label: test',
      `    hash: "${hash}"`,
      '    allow: ["*"]',
      '',
    ].join('\n'),
  );
  const gate = start(bin, ['serve', '--config', config], CLEAN_ENV);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (gate.exited) throw new Error(`serve exited:\n${gate.stderr}`);
      const res = await fetch(`${base}/healthz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    15_000,
    'the gateway to answer /healthz',
  );

  await t.test("its own gc comes from the executable's --expose-gc, not from a second V8 context", () => {
    const line = gate.stderr.split('\n').find((l) => l.includes('mcpgate listening on'));
    assert.ok(line, `the start-up line:\n${gate.stderr}`);
    assert.equal((JSON.parse(line) as { gc?: unknown }).gc, 'flag');
  });

  await t.test('without a key: 401', async () => {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(res.status, 401);
    await res.body?.cancel();
  });

  await t.test('with the key: list and call the echo tool through the gateway', async () => {
    const client = new Client({ name: 'mcpgate-package-test', version: '0.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      assert.ok(
        tools.some((tool) => tool.name === 'echo'),
        'echo is listed',
      );
      const result = await client.callTool({
        name: 'echo',
        arguments: { message: 'through the executable' },
      });
      assert.deepEqual(result.content, [{ type: 'text', text: 'Echo: through the executable' }]);
    } finally {
      await client.close();
    }
  });

  await t.test('one audit line per request on stdout, and the key is never written', async () => {
    const line = await waitFor(
      () => records(gate.stdout).find((rec) => JSON.stringify(rec).includes('"tools/call"')),
      5_000,
      'the tools/call audit line',
    );
    assert.equal(line.decision, 'allow');
    assert.equal(line.status, 200);
    const denied = records(gate.stdout).find((rec) => rec.status === 401);
    assert.ok(denied, 'the 401 was audited too');
    assert.notEqual(denied.decision, 'allow');
    assert.ok(!gate.stdout.includes(key) && !gate.stderr.includes(key), 'the key never appears in the logs');
  });
});

/** The section names of a 64-bit little-endian ELF file (what `readelf -S` lists). */
async function elfSections(path: string): Promise<string[]> {
  const file = await open(path, 'r');
  try {
    const read = async (offset: number, length: number) => {
      const buf = Buffer.alloc(length);
      await file.read(buf, 0, length, offset);
      return buf;
    };
    const header = await read(0, 64);
    assert.equal(header.toString('latin1', 0, 4), '\x7fELF');
    assert.equal(header[4], 2, '64-bit ELF');
    const shoff = Number(header.readBigUInt64LE(0x28));
    const shentsize = header.readUInt16LE(0x3a);
    const shnum = header.readUInt16LE(0x3c);
    const table = await read(shoff, shentsize * shnum);
    const at = (i: number) => table.subarray(i * shentsize, (i + 1) * shentsize);
    const strtab = at(header.readUInt16LE(0x3e));
    const names = await read(Number(strtab.readBigUInt64LE(0x18)), Number(strtab.readBigUInt64LE(0x20)));
    return Array.from({ length: shnum }, (_, i) => {
      const start = at(i).readUInt32LE(0);
      return names.toString('latin1', start, names.indexOf(0, start));
    });
  } finally {
    await file.close();
  }
}

test('the executable carries no symbol table or debug info (build:bin strips the Node binary)', async () => {
  const sections = await elfSections(bin);
  assert.ok(sections.includes('.text') && sections.includes('.dynsym'), sections.join(' '));
  assert.deepEqual(
    sections.filter((s) => s === '.symtab' || s.startsWith('.debug_')),
    [],
  );
  const { size } = await stat(bin);
  assert.ok(size < 115 * 2 ** 20, `${(size / 2 ** 20).toFixed(1)} MiB (unstripped it was about 123.5 MiB)`);
});

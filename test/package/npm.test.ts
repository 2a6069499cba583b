// The npm package: what "files" ships, and that bin/mcpgate.js runs the ESM bundle when the
// TypeScript sources are absent (as in an installed package).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleForNpm } from '../../scripts/build.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  files: string[];
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  scripts: Record<string, string>;
};

// An installed-package layout: <pkg>/bin/mcpgate.js + <pkg>/dist/mcpgate.mjs and no src/. It sits
// under the repo's node_modules so the bundle's external dependencies resolve as they would for a user.
let pkgDir = '';

before(async () => {
  const cache = join(ROOT, 'node_modules/.cache');
  await mkdir(cache, { recursive: true });
  pkgDir = await mkdtemp(join(cache, 'mcpgate-npm-test-'));
  await bundleForNpm(join(pkgDir, 'dist/mcpgate.mjs'));
  await mkdir(join(pkgDir, 'bin'));
  await copyFile(join(ROOT, 'bin/mcpgate.js'), join(pkgDir, 'bin/mcpgate.js'));
});

after(async () => {
  if (pkgDir) await rm(pkgDir, { recursive: true, force: true });
});

function node(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: pkgDir, timeout: 15_000, encoding: 'utf8' },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('"files" ships the bin shim and the bundle, not the TypeScript sources', () => {
  assert.equal(pkg.bin.mcpgate, 'bin/mcpgate.js');
  assert.ok(pkg.files.includes('bin/'));
  assert.ok(pkg.files.includes('dist/mcpgate.mjs'));
  assert.ok(pkg.files.includes('LICENSE'));
  // Node refuses to strip types under node_modules: shipped .ts sources could not run.
  assert.ok(!pkg.files.some((f) => f.startsWith('src')), 'src/ is not published');
  assert.equal(pkg.scripts.build, 'node scripts/build.ts');
});

test('the bundle keeps dependencies external: npm installs them from "dependencies"', async () => {
  const text = await readFile(join(pkgDir, 'dist/mcpgate.mjs'), 'utf8');
  const imported = new Set(
    [...text.matchAll(/^import .* from "([^".][^"]*)";$/gm)].map((m) => m[1] as string),
  );
  const packages = [...imported].filter((s) => !s.startsWith('node:')).map((s) => s.split('/')[0] as string);
  assert.ok(packages.length > 0, 'imports some packages');
  for (const name of packages) assert.ok(pkg.dependencies[name], `${name} is a runtime dependency`);
});

test('bin/mcpgate.js runs the bundle when src/ is absent', async () => {
  const r = await node(['bin/mcpgate.js', '--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${pkg.version}\n`);
  const help = await node(['bin/mcpgate.js', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /serve/);
});

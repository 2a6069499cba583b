// Builds dist/mcpgate: one executable for this machine's OS and CPU (linux x64 or arm64), made with
// Node's single-executable applications (SEA) through @yao-pkg/pkg's SEA mode.
//
// 1. esbuild inlines the CLI and every dependency into dist/mcpgate.cjs (see build.ts).
// 2. pkg writes the sea-config, has Node compile the blob (with a V8 code cache, for startup time)
//    and injects it into a copy of the Node binary with postject.
//
// The Node binary is the one running this script: under `npm run` that is node_modules/.bin/node,
// the official build that the `node` devDependency installs. It both generates the blob and becomes
// the executable, so the two can never disagree on the SEA blob format, and nothing is downloaded.
// (pkg's command line cannot be told to use a local Node in SEA mode: it fetches nodejs.org's
// release index and tarball, which fails offline; its sea() function takes `nodePath`, so we call it.)
//
// The official Linux Node binary carries its symbol table and DWARF debug info (about 17 MiB of
// 121 MiB for Node 24.21 x64), which nothing at run time reads: the executable is made from a copy
// stripped with `strip --strip-all` (binutils). The dynamic symbol table stays (native addons link
// against it), JavaScript stack traces are unchanged; only a native crash's backtrace loses names.
import pkgSea from '@yao-pkg/pkg/lib-es5/sea.js';
import { rm, stat } from 'node:fs/promises';
import { execFileSync, spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { relative, resolve } from 'node:path';
import { BINARY, ENTRY, ROOT, bundleForSea } from './build.ts';

/** Builds the executable at `output`; its main script is written beside it as `<output>.cjs`. */
export async function buildBinary(output: string = BINARY, entry: string = ENTRY): Promise<string> {
  output = resolve(output);
  if (process.platform !== 'linux') throw new Error(`build:bin targets linux, this is ${process.platform}`);
  if (process.arch !== 'x64' && process.arch !== 'arm64') throw new Error(`unsupported CPU ${process.arch}`);
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22)
    throw new Error(`build:bin needs Node >= 22 (running ${process.version}); use "npm run build:bin"`);

  const main = await bundleForSea(`${output}.cjs`, entry);
  await rm(output, { force: true });
  const node = strippedNode(`${output}.node`);
  // Passed to Node's sea-config.json as it is (pkg's type does not list execArgv, Node 24 reads it).
  const seaConfig = {
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    useSnapshot: false,
    // The gateway's own collections (idle reclaim, young sweep) use this process's gc, not a second
    // V8 context, which makes requests cost more CPU after pauses in traffic (src/server/gc-access.ts).
    execArgv: ['--expose-gc'],
  };
  // V8 accepts a code cache only under the flags it was made with (else it warns "Code cache data
  // rejected" at every start and compiles from source): the blob generator pkg runs (a child of
  // this process) gets the executable's execArgv through NODE_OPTIONS.
  const nodeOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = [nodeOptions, ...seaConfig.execArgv].filter(Boolean).join(' ');
  try {
    await pkgSea.default(main, {
      targets: [{ nodeRange: `node${major}`, platform: 'linux', arch: process.arch, output }],
      nodePath: node,
      signature: false,
      seaConfig,
    });
  } finally {
    if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = nodeOptions;
    await rm(node, { force: true });
  }
  // Smoke check: the executable starts on its own, reports the package version, and warns of nothing
  // (a rejected code cache would say so on stderr).
  const smoke = spawnSync(output, ['--version'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  if (smoke.status !== 0 || smoke.stderr !== '')
    throw new Error(`the executable's --version failed or warned (exit ${smoke.status}):\n${smoke.stderr}`);
  const version = smoke.stdout;
  const { size } = await stat(output);
  console.log(
    `built ${relative(ROOT, output)} (${(size / 2 ** 20).toFixed(1)} MiB, Node ${process.version} linux-${process.arch}, --version: ${version.trim()})`,
  );
  return output;
}

/** A copy of the running Node without its symbol table and debug info, at `path`. */
function strippedNode(path: string): string {
  try {
    execFileSync('strip', ['--strip-all', '-o', path, process.execPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(
      e.code === 'ENOENT'
        ? 'build:bin strips the Node binary with `strip`, which is not installed (apt-get install binutils)'
        : `strip failed: ${e.message}`,
      { cause: err },
    );
  }
  return path;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // --out <path>: where to write the executable (default dist/mcpgate).
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  await buildBinary(values.out);
}

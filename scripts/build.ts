// Bundles the CLI with esbuild.
//
//   node scripts/build.ts            -> dist/mcpgate.mjs  (ESM, for the npm package; dependencies stay
//                                       external and are installed by npm from "dependencies")
//   bundleForSea() (build-bin.ts)    -> dist/mcpgate.cjs  (CJS, every dependency inlined: Node 24's
//                                       single-executable main script must be one CommonJS file whose
//                                       require() only reaches Node's builtin modules)
//
// Both bundles come from the same entry (src/cli/main.ts) and the same options, so `npx mcpgate`
// and the executable run the same code.
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { isBuiltin } from 'node:module';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(ROOT, 'dist');
export const ESM_BUNDLE = join(DIST, 'mcpgate.mjs');
export const SEA_BUNDLE = join(DIST, 'mcpgate.cjs');
/** The executable built by `npm run build:bin` (and copied into the container image). */
export const BINARY = join(DIST, 'mcpgate');

export const ENTRY = join(ROOT, 'src/cli/main.ts');

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  logLevel: 'warning',
  legalComments: 'eof',
  metafile: true,
  // A bundle has no files beside it: `new URL('x', import.meta.url)` would point at nothing once the
  // code runs from dist/ or from inside the executable. Make any use of import.meta a build error.
  logOverride: { 'empty-import-meta': 'error' },
};

/** dist/mcpgate.mjs: the npm package's entry (loaded by bin/mcpgate.js when src/ is absent). */
export async function bundleForNpm(outfile: string = ESM_BUNDLE, entry: string = ENTRY): Promise<string> {
  await mkdir(dirname(outfile), { recursive: true });
  await build({
    ...common,
    entryPoints: [entry],
    outfile,
    format: 'esm',
    target: 'node22.18',
    packages: 'external',
    logOverride: {}, // ESM keeps import.meta; dependencies resolve from node_modules as usual
  });
  return outfile;
}

/** dist/mcpgate.cjs: one self-contained CommonJS file, the main script of the executable. */
export async function bundleForSea(outfile: string = SEA_BUNDLE, entry: string = ENTRY): Promise<string> {
  await mkdir(dirname(outfile), { recursive: true });
  const result = await build({
    ...common,
    entryPoints: [entry],
    outfile,
    format: 'cjs',
    target: `node${process.versions.node}`,
  }).catch((err: unknown) => {
    const errors = (err as { errors?: { text: string }[] }).errors ?? [];
    if (errors.some((e) => e.text.includes('Top-level await'))) {
      throw new Error(
        "the executable's main script is CommonJS (Node 24 SEA), so the CLI must not use top-level await: " +
          'end src/cli/main.ts with `buildProgram(io).parseAsync(process.argv).catch(...)` instead of `await`',
        { cause: err },
      );
    }
    throw err;
  });
  assertSelfContained(result.metafile);
  return outfile;
}

/** Inside the executable require() reaches only builtins: fail the build on any other import left out. */
export function assertSelfContained(metafile: Metafile | undefined): void {
  if (!metafile) throw new TypeError('esbuild metafile missing');
  const outside = new Set<string>();
  for (const input of Object.values(metafile.inputs)) {
    for (const imp of input.imports) {
      if (imp.external && imp.path !== '<runtime>' && !isBuiltin(imp.path)) outside.add(imp.path);
    }
  }
  if (outside.size > 0) {
    throw new Error(`bundle is not self-contained, it imports: ${[...outside].join(', ')}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await bundleForNpm();
  console.log(`built ${out}`);
}

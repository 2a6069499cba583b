// The Dockerfile lints clean and says what the image promises, checked without a Docker engine:
// what the build stage copies exists and is not excluded by .dockerignore, the runtime stage holds
// only the executable that `npm run build:bin` writes, and it runs as non-root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { posix, relative } from 'node:path';
import { validate } from 'dockerfile-utils';
import { BINARY, ROOT } from '../../scripts/build.ts';

const read = (name: string) => readFileSync(new URL(`../../${name}`, import.meta.url), 'utf8');
const dockerfile = read('Dockerfile');
const pkg = JSON.parse(read('package.json')) as { license: string; scripts: Record<string, string> };
const BIN = '/usr/local/bin/mcpgate';

interface Instruction {
  keyword: string;
  args: string;
}

/** Logical instructions: comments dropped, `\` continuations joined. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const space = full.search(/\s/);
    out.push({ keyword: full.slice(0, space).toUpperCase(), args: full.slice(space + 1).trim() });
  }
  return out;
}

interface Stage {
  from: string;
  name: string | undefined;
  body: Instruction[];
}

function stages(list: Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const ins of list) {
    if (ins.keyword === 'FROM') {
      const [from, as, name] = ins.args.split(/\s+/);
      out.push({ from: from as string, name: as?.toUpperCase() === 'AS' ? name : undefined, body: [] });
    } else {
      out.at(-1)?.body.push(ins);
    }
  }
  return out;
}

function all(stage: Stage, keyword: string): Instruction[] {
  return stage.body.filter((i) => i.keyword === keyword);
}

function one(stage: Stage, keyword: string): Instruction {
  const found = all(stage, keyword);
  assert.equal(found.length, 1, `exactly one ${keyword}`);
  return found[0] as Instruction;
}

function pairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([\w.-]+)=("([^"]*)"|\S+)/g)) out[m[1] as string] = m[3] ?? (m[2] as string);
  return out;
}

/** .dockerignore semantics for the patterns used here: the last matching pattern wins, `!` re-includes. */
function ignored(path: string, patterns: string[]): boolean {
  let result = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/\/$/, '');
    const hit = pattern === '**' || path === pattern || path.startsWith(pattern + '/');
    if (hit) result = !negate;
  }
  return result;
}

const [build, runtime, ...extra] = stages(instructions(dockerfile));
const ignore = read('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

test('the Dockerfile lints clean (and the linter does report problems)', () => {
  assert.deepEqual(
    validate(dockerfile).map((d) => `${d.range.start.line + 1}: ${d.message}`),
    [],
  );
  assert.ok(validate('FROM node:24 AS a\nFROM node:24 AS a\nEXPOSE notaport\n').length >= 2);
});

test('two stages: a node:24 build stage, a distroless runtime stage', () => {
  assert.ok(build && runtime, 'two stages');
  assert.equal(extra.length, 0);
  assert.match(build.from, /^node:24(-bookworm)?$/);
  assert.equal(build.name, 'build');
  assert.equal(runtime.from, 'gcr.io/distroless/cc-debian12:nonroot');
  assert.equal(all(runtime, 'RUN').length, 0, 'the distroless runtime has no shell to RUN');
});

test('the build stage installs from the lock file, then builds the executable', () => {
  assert.ok(build);
  const runs = all(build, 'RUN').map((r) => r.args);
  const ci = runs.findIndex((r) => /^npm ci\b/.test(r));
  const bin = runs.findIndex((r) => r.includes('npm run build:bin'));
  assert.ok(ci >= 0 && bin > ci, 'npm ci, then npm run build:bin');
  assert.equal(pkg.scripts['build:bin'], 'node scripts/build-bin.ts');
  assert.equal(one(build, 'WORKDIR').args, '/src');
});

test('what the build stage copies exists and is not excluded by .dockerignore', () => {
  assert.ok(build);
  const sources = all(build, 'COPY').flatMap((c) => c.args.split(/\s+/).slice(0, -1));
  assert.deepEqual(sources, ['package.json', 'package-lock.json', 'scripts/', 'src/']);
  for (const source of sources) {
    assert.ok(existsSync(new URL(`../../${source}`, import.meta.url)), `${source} exists`);
    assert.equal(ignored(source.replace(/\/$/, ''), ignore), false, `${source} is sent to the builder`);
  }
  // The files the build reads are inside what is copied, and the bulky or secret ones are not sent.
  for (const needed of ['scripts/build.ts', 'scripts/build-bin.ts', 'src/cli/main.ts']) {
    assert.equal(ignored(needed, ignore), false, needed);
  }
  for (const excluded of [
    'node_modules/esbuild/package.json',
    'dist/mcpgate',
    '.git/HEAD',
    'test/x.test.ts',
    '.env',
  ]) {
    assert.equal(ignored(excluded, ignore), true, excluded);
  }
});

test('the runtime stage holds only the executable that build:bin writes, and runs it', () => {
  assert.ok(build && runtime);
  const copies = all(runtime, 'COPY');
  assert.equal(copies.length, 1);
  const built = posix.join(one(build, 'WORKDIR').args, relative(ROOT, BINARY));
  assert.equal(copies[0]?.args, `--from=build ${built} ${BIN}`);
  assert.equal(relative(ROOT, BINARY), 'dist/mcpgate');
  assert.deepEqual(JSON.parse(one(runtime, 'ENTRYPOINT').args), [BIN]);
  assert.deepEqual(JSON.parse(one(runtime, 'CMD').args), ['serve']);
});

test('runs as non-root, listens on 0.0.0.0:8080, reads /etc/mcpgate/config.yaml, has a shell-free health check', () => {
  assert.ok(runtime);
  const user = one(runtime, 'USER').args;
  assert.doesNotMatch(user, /^(root|0)(:|$)/);
  // Numeric, so Kubernetes' runAsNonRoot can verify it (distroless nonroot is 65532).
  assert.equal(user, '65532:65532');
  assert.equal(one(runtime, 'EXPOSE').args, '8080');
  const env = pairs(
    all(runtime, 'ENV')
      .map((e) => e.args)
      .join(' '),
  );
  assert.equal(env.MCPGATE_CONFIG, '/etc/mcpgate/config.yaml');
  assert.equal(env.MCPGATE_LISTEN, '0.0.0.0:8080');
  const health = one(runtime, 'HEALTHCHECK').args;
  const cmd = health.slice(health.indexOf('CMD ') + 4);
  assert.deepEqual(JSON.parse(cmd), [BIN, 'health']);
});

test('carries the OCI labels', () => {
  assert.ok(runtime);
  const labels = pairs(
    all(runtime, 'LABEL')
      .map((l) => l.args)
      .join(' '),
  );
  assert.equal(labels['org.opencontainers.image.licenses'], pkg.license);
  assert.match(labels['org.opencontainers.image.source'] ?? '', /^https:\/\/github\.com\/[\w.-]+\/[\w.-]+$/);
  assert.ok((labels['org.opencontainers.image.description'] ?? '').length > 20);
});

test('release.Dockerfile is the runtime stage around the released executable of each platform', () => {
  assert.ok(runtime);
  const release = read('release.Dockerfile');
  assert.deepEqual(
    validate(release).map((d) => `${d.range.start.line + 1}: ${d.message}`),
    [],
  );
  const [only, ...more] = stages(instructions(release));
  assert.ok(only);
  assert.equal(more.length, 0, 'one stage: nothing is built, so nothing needs QEMU');
  assert.equal(only.from, runtime.from);
  assert.equal(all(only, 'RUN').length, 0);
  assert.equal(one(only, 'ARG').args, 'TARGETARCH');
  assert.equal(one(only, 'COPY').args, `\${TARGETARCH}/mcpgate ${BIN}`);
  // Everything else is the same as ./Dockerfile's runtime stage, so the two images cannot drift.
  const rest = (s: Stage) => s.body.filter((i) => i.keyword !== 'COPY' && i.keyword !== 'ARG');
  assert.deepEqual(rest(only), rest(runtime));
});

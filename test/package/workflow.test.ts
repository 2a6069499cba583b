// The release and CI workflows parse and have the structure a release depends on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  scripts: Record<string, string>;
};

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  [key: string]: unknown;
}
interface Job {
  'runs-on': string;
  needs?: string | string[];
  permissions?: Record<string, string>;
  strategy?: { matrix: { include?: Record<string, string>[]; [key: string]: unknown } };
  steps: Step[];
}
interface Workflow {
  name: string;
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

function load(name: string): Workflow {
  const text = readFileSync(new URL(`.github/workflows/${name}`, root), 'utf8');
  const doc = parse(text, { uniqueKeys: true, strict: true }) as Workflow;
  assert.equal(typeof doc.name, 'string');
  assert.ok(doc.on && typeof doc.on === 'object', `${name}: no "on"`);
  assert.ok(doc.jobs && Object.keys(doc.jobs).length > 0, `${name}: no jobs`);
  return doc;
}

function job(wf: Workflow, name: string): Job {
  const j = wf.jobs[name];
  assert.ok(j, `job ${name} missing`);
  return j;
}

function step(j: Job, action: string): Step {
  const s = j.steps.find((x) => x.uses?.split('@')[0] === action);
  assert.ok(s, `step using ${action} missing`);
  return s;
}

/** Every step uses a pinned action (owner/name@ref) or runs a command, and `npm run X` names a real script. */
function checkSteps(wf: Workflow): void {
  for (const [name, j] of Object.entries(wf.jobs)) {
    assert.ok(Array.isArray(j.steps) && j.steps.length > 0, `${name}: no steps`);
    assert.ok(j['runs-on'], `${name}: no runs-on`);
    for (const s of j.steps) {
      assert.ok(
        (s.uses === undefined) !== (s.run === undefined),
        `${name}: a step needs exactly one of uses/run`,
      );
      if (s.uses !== undefined)
        assert.match(s.uses, /^[\w.-]+\/[\w./-]+@[\w.-]+$/, `${name}: unpinned ${s.uses}`);
      for (const m of (s.run ?? '').matchAll(/npm run ([\w:-]+)/g)) {
        assert.ok(pkg.scripts[m[1] as string], `${name}: npm run ${m[1]} is not a package.json script`);
      }
    }
    for (const need of [j.needs ?? []].flat()) assert.ok(wf.jobs[need], `${name} needs unknown job ${need}`);
  }
}

test('release.yml: runs on version tags, least privilege by default', () => {
  const wf = load('release.yml');
  checkSteps(wf);
  assert.deepEqual(wf.on, { push: { tags: ['v*'] } });
  assert.deepEqual(wf.permissions, { contents: 'read' });
});

test('release.yml: builds the executable natively on linux x64 and arm64, with provenance', () => {
  const j = job(load('release.yml'), 'binaries');
  const include = j.strategy?.matrix.include ?? [];
  assert.deepEqual(
    include.map((e) => [e.arch, e.runner]),
    [
      ['x64', 'ubuntu-24.04'],
      ['arm64', 'ubuntu-24.04-arm'],
    ],
  );
  assert.equal(j['runs-on'], '${{ matrix.runner }}');
  const runs = j.steps.map((s) => s.run ?? '');
  const ci = runs.indexOf('npm ci');
  const build = runs.indexOf('npm run build:bin');
  assert.ok(
    runs.some((r) => r.includes('install -y redis-server')),
    'redis-server for the tests',
  );
  assert.ok(ci >= 0 && build > ci, 'npm ci then npm run build:bin');
  assert.ok(
    runs.some((r) => r.includes('--version') && r.includes('GITHUB_REF_NAME')),
    'checks version against tag',
  );
  assert.equal(step(j, 'actions/setup-node').with?.['node-version'], 24);
  assert.match(String(step(j, 'actions/attest-build-provenance').with?.['subject-path']), /mcpgate-linux-/);
  assert.equal(j.permissions?.['id-token'], 'write');
  assert.equal(j.permissions?.attestations, 'write');
});

test('release.yml: publishes the executables as release assets', () => {
  const j = job(load('release.yml'), 'github-release');
  assert.equal(j.needs, 'binaries');
  assert.equal(j.permissions?.contents, 'write');
  const run = j.steps.map((s) => s.run ?? '').join('\n');
  assert.match(run, /gh release create/);
  assert.match(run, /mcpgate-linux-x64 mcpgate-linux-arm64 SHA256SUMS/);
});

test('release.yml: pushes a multi-arch image to ghcr with provenance', () => {
  const j = job(load('release.yml'), 'image');
  assert.equal(j.needs, 'binaries');
  assert.equal(j.permissions?.packages, 'write');
  assert.equal(j.permissions?.['id-token'], 'write');
  assert.equal(j.permissions?.attestations, 'write');
  const login = step(j, 'docker/login-action').with ?? {};
  assert.equal(login.registry, 'ghcr.io');
  assert.equal(login.password, '${{ secrets.GITHUB_TOKEN }}');
  const push = step(j, 'docker/build-push-action').with ?? {};
  assert.equal(push.platforms, 'linux/amd64,linux/arm64');
  assert.equal(push.provenance, true);
  assert.equal(push.push, true);
  assert.equal(push.tags, '${{ steps.meta.outputs.tags }}');
  assert.match(String(step(j, 'docker/metadata-action').with?.images), /ghcr\.io|env\.IMAGE/);
  const order = j.steps.map((s) => s.uses?.split('@')[0]);
  assert.ok(order.indexOf('docker/setup-buildx-action') < order.indexOf('docker/build-push-action'));
  assert.ok(order.indexOf('docker/login-action') < order.indexOf('docker/build-push-action'));
});

test('release.yml: each executable is tested where it is built, then released and imaged as that same file', () => {
  const wf = load('release.yml');
  const bins = job(wf, 'binaries');
  const runs = bins.steps.map((s) => s.run ?? '');
  const build = runs.indexOf('npm run build:bin');
  const testStep = bins.steps.find((s) => s.run === 'npm test');
  assert.ok(testStep, 'npm test');
  assert.ok(build >= 0 && build < bins.steps.indexOf(testStep), 'build:bin before npm test');
  // test/package/binary.test.ts then runs this dist/mcpgate instead of building its own.
  assert.deepEqual(testStep.env, { MCPGATE_TEST_BINARY: '${{ github.workspace }}/dist/mcpgate' });
  const upload = step(bins, 'actions/upload-artifact');
  assert.equal(upload.with?.name, 'mcpgate-linux-${{ matrix.arch }}');
  assert.ok(bins.steps.indexOf(upload) > bins.steps.indexOf(testStep));

  const image = job(wf, 'image');
  const uses = image.steps.map((s) => s.uses?.split('@')[0]);
  assert.ok(!uses.includes('docker/setup-qemu-action'), 'no QEMU: the image build runs nothing foreign');
  const download = uses.indexOf('actions/download-artifact');
  const push = uses.indexOf('docker/build-push-action');
  assert.ok(download >= 0 && download < push, 'the image job downloads the tested executables first');
  const place = image.steps.map((s) => s.run ?? '').join('\n');
  for (const [arch, platform] of [
    ['x64', 'amd64'],
    ['arm64', 'arm64'],
  ])
    assert.match(
      place,
      new RegExp(`install -D -m 0755 dist/mcpgate-linux-${arch} image/${platform}/mcpgate`),
    );
  const pushWith = image.steps[push]!.with ?? {};
  assert.equal(pushWith.context, 'image');
  assert.equal(pushWith.file, 'release.Dockerfile');
  // release.Dockerfile copies ${TARGETARCH}/mcpgate (test/package/dockerfile.test.ts), and builds nothing.
  const dockerfile = readFileSync(new URL('release.Dockerfile', root), 'utf8');
  assert.match(dockerfile, /^COPY \$\{TARGETARCH\}\/mcpgate \/usr\/local\/bin\/mcpgate$/m);
  assert.doesNotMatch(dockerfile, /^RUN /m);
});

test('ci.yml: runs the whole test suite on both architectures', () => {
  const wf = load('ci.yml');
  checkSteps(wf);
  const j = job(wf, 'test');
  assert.deepEqual(j.strategy?.matrix.runner, ['ubuntu-24.04', 'ubuntu-24.04-arm']);
  assert.deepEqual(
    j.steps.filter((s) => s.run).map((s) => s.run),
    // The rate-limit tests start a real redis-server, which GitHub's runners do not have.
    ['sudo apt-get update && sudo apt-get install -y redis-server', 'npm ci', 'npm test'],
  );
});

test('the workflow checks catch an unpinned action and an unknown npm script', () => {
  const bad: Workflow = {
    name: 'x',
    on: {},
    jobs: { a: { 'runs-on': 'ubuntu-24.04', steps: [{ uses: 'actions/checkout' }] } },
  };
  assert.throws(() => checkSteps(bad), /unpinned/);
  const bad2: Workflow = {
    name: 'x',
    on: {},
    jobs: { a: { 'runs-on': 'ubuntu-24.04', steps: [{ run: 'npm run no-such-script' }] } },
  };
  assert.throws(() => checkSteps(bad2), /not a package.json script/);
});

// Install paths agree: every place that names where mcpgate is published (README, package.json,
// the image labels, the examples) uses the one placeholder `OWNER` for the repository owner, and the
// release workflow publishes under the repository it runs in, with the names the README downloads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url);
const read = (name: string) => readFileSync(new URL(name, root), 'utf8');
const PLACEHOLDER = 'OWNER';

/** The owners a text names in github.com/<owner>/mcpgate and ghcr.io/<owner>/mcpgate. */
function owners(text: string): string[] {
  return [...text.matchAll(/(?:github\.com|ghcr\.io)\/([^/\s"'`]+)\/mcpgate\b/g)].map((m) => m[1]!);
}

function examples(dir = 'examples/'): string[] {
  return readdirSync(new URL(dir, root), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? examples(`${dir}${e.name}/`) : /\.(ya?ml|md)$/.test(e.name) ? [`${dir}${e.name}`] : [],
  );
}

test(`README, package.json, Dockerfile and examples name the owner as ${PLACEHOLDER}, and only so`, () => {
  const files = ['README.md', 'package.json', 'Dockerfile', 'release.Dockerfile', ...examples()];
  for (const file of files) {
    for (const owner of owners(read(file)))
      assert.equal(owner, PLACEHOLDER, `${file} names owner "${owner}"`);
  }
  for (const file of ['README.md', 'package.json', 'Dockerfile'])
    assert.ok(owners(read(file)).length > 0, `${file} says where mcpgate is published`);
  const pkg = JSON.parse(read('package.json')) as { homepage: string; repository: { url: string } };
  assert.equal(pkg.homepage, `https://github.com/${PLACEHOLDER}/mcpgate#readme`);
  assert.equal(pkg.repository.url, `git+https://github.com/${PLACEHOLDER}/mcpgate.git`);
  assert.match(
    read('Dockerfile'),
    new RegExp(`image\\.source="https://github\\.com/${PLACEHOLDER}/mcpgate"`),
  );
  assert.ok(
    new RegExp(`\`${PLACEHOLDER}\` stands for the GitHub`).test(read('README.md')),
    'the README says what to put there',
  );
});

test('the owner check catches a second spelling', () => {
  assert.deepEqual(owners('see https://github.com/mcpgate/mcpgate and ghcr.io/OWNER/mcpgate:latest'), [
    'mcpgate',
    'OWNER',
  ]);
});

test('the release workflow publishes under its own repository, with the names the README downloads', () => {
  const wf = read('.github/workflows/release.yml');
  const doc = parse(wf) as { jobs: Record<string, { steps: { run?: string }[] }> };
  assert.deepEqual(owners(wf), [], 'release.yml hard-codes no owner');
  const runs = Object.values(doc.jobs).flatMap((j) => j.steps.map((s) => s.run ?? ''));
  assert.ok(runs.some((r) => r.includes('IMAGE=ghcr.io/${GITHUB_REPOSITORY,,}')));
  const release = runs.find((r) => r.includes('gh release create')) ?? '';
  assert.ok(release.includes('--repo "$GITHUB_REPOSITORY"'));
  const readme = read('README.md');
  const downloads = [...readme.matchAll(/releases\/latest\/download\/(mcpgate-linux-\w+)/g)].map(
    (m) => m[1]!,
  );
  assert.ok(downloads.length > 0, 'the README downloads a release asset');
  for (const name of [
    ...downloads,
    ...[...readme.matchAll(/or -linux-(\w+)/g)].map((m) => `mcpgate-linux-${m[1]}`),
  ])
    assert.ok(release.includes(name), `the release uploads ${name}`);
});

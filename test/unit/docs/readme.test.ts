/** The README's generated tables and version match the code, so the docs cannot drift. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fill } from '../../../scripts/readme-tables.ts';
import { VERSION } from '../../../src/version.ts';
import { ERROR_CODES } from '../../../src/jsonrpc/errors.ts';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

it('README config reference and method table are generated from the code', () => {
  assert.equal(readme, fill(readme), 'run: node scripts/readme-tables.ts');
});

it('README lists every error code', () => {
  for (const code of ERROR_CODES) assert.ok(readme.includes(`\`${code}\``), `${code} is not documented`);
});

it('the version constant matches package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.equal(VERSION, pkg.version);
});

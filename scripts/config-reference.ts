// Rewrites the README's config reference between its markers from the schema.
// `node scripts/config-reference.ts` after changing src/config/schema.ts; a test fails if they differ.
import { readFileSync, writeFileSync } from 'node:fs';
import { renderConfigReference } from '../src/config/reference.ts';

const README = new URL('../README.md', import.meta.url);
const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';
const text = readFileSync(README, 'utf8');
const a = text.indexOf(START);
const b = text.indexOf(END);
if (a === -1 || b === -1) throw new Error('README.md has no config-reference markers');
writeFileSync(README, text.slice(0, a + START.length) + '\n' + renderConfigReference() + '\n' + text.slice(b));
console.log('README.md config reference updated');

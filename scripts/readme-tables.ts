// Rewrites the README's generated tables (config reference, method table) from the code.
// Run after changing src/config/schema.ts or src/policy/methods.ts; a test fails if they drift.
import { readFileSync, writeFileSync } from 'node:fs';
import { renderConfigReference } from '../src/config/reference.ts';
import { renderMethodTable } from '../src/policy/methods.ts';
import { renderEnvReference } from '../src/config/env.ts';

export const GENERATED: Record<string, () => string> = {
  'config-reference': renderConfigReference,
  'method-table': renderMethodTable,
  'env-reference': renderEnvReference,
};

export function fill(text: string): string {
  for (const [name, render] of Object.entries(GENERATED)) {
    const start = `<!-- ${name}:start -->`;
    const end = `<!-- ${name}:end -->`;
    const a = text.indexOf(start);
    const b = text.indexOf(end);
    if (a === -1 || b === -1) throw new Error(`README.md has no ${name} markers`);
    text = text.slice(0, a + start.length) + '\n' + render().trim() + '\n' + text.slice(b);
  }
  return text;
}

if (import.meta.main) {
  const readme = new URL('../README.md', import.meta.url);
  writeFileSync(readme, fill(readFileSync(readme, 'utf8')));
  console.log('README.md tables updated');
}

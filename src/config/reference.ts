/** Renders the config reference (a Markdown table) from the schema, so the README cannot drift. */
import { configSpec } from './schema.ts';
import type { Spec } from './spec.ts';

export function renderConfigReference(): string {
  const rows: string[] = ['| field | type | default | meaning |', '| --- | --- | --- | --- |'];
  walk(configSpec as Spec<unknown>, '', rows);
  return rows.join('\n');
}

function walk(spec: Spec<unknown>, path: string, rows: string[]): void {
  const doc = spec.doc;
  if (doc.fields) {
    if (path) rows.push(row(path, doc.type, doc.default, doc.description));
    for (const [name, field] of Object.entries(doc.fields))
      walk(field, path ? `${path}.${name}` : name, rows);
    return;
  }
  rows.push(row(path, doc.type, doc.default, doc.description));
  if (doc.items?.doc.fields) walk(doc.items, `${path}[]`, rows);
}

function row(path: string, type: string, fallback: string | undefined, description: string): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return `| \`${path}\` | ${type.includes('`') ? type : cell(type)} | ${fallback === undefined ? '' : `\`${cell(fallback)}\``} | ${cell(description)} |`;
}

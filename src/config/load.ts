/** Reads, interpolates and validates a config file; returns a frozen Config or every problem at once. */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { interpolate } from './interpolate.ts';
import { configSpec } from './schema.ts';
import type { Config } from './schema.ts';
import { crossChecks } from './checks.ts';
import type { Issue } from './spec.ts';

export interface LoadResult {
  readonly config: Config | undefined;
  readonly issues: readonly Issue[];
}

export class ConfigError extends Error {
  readonly issues: readonly Issue[];
  constructor(issues: readonly Issue[]) {
    super(
      issues
        .filter((i) => i.severity === 'error')
        .map(formatIssue)
        .join('\n'),
    );
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(issue: Issue): string {
  return `${issue.severity === 'warning' ? 'warning: ' : ''}${issue.path}: ${issue.message}`;
}

export function parseConfigText(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  now: number,
): LoadResult {
  const issues: Issue[] = [];
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  for (const err of doc.errors) {
    const line = err.linePos?.[0];
    issues.push({
      path: line ? `line ${line.line}:${line.col}` : '(yaml)',
      message: (err.message.split('\n')[0] ?? 'invalid YAML').replace(/ at line \d+, column \d+:?$/, ''),
      severity: 'error',
    });
  }
  if (issues.length > 0) return { config: undefined, issues };
  const raw = interpolate(doc.toJS({ maxAliasCount: 100 }) ?? {}, env, issues);
  const unresolved = new Set(issues.map((i) => i.path));
  const later: Issue[] = [];
  const config = configSpec.parse(raw, '', later);
  // Cross-field checks run on the raw tree in the same pass, so every problem is reported at once.
  crossChecks(raw, now, later);
  // A value whose variable is unset is reported once, not again as an invalid value.
  for (const issue of later) if (!unresolved.has(issue.path)) issues.push(issue);
  const failed = issues.some((i) => i.severity === 'error');
  return { config: failed ? undefined : config, issues };
}

export async function loadConfig(
  path: string,
  env: Readonly<Record<string, string | undefined>>,
  now: number,
): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'cannot be read';
    return { config: undefined, issues: [{ path, message: reason, severity: 'error' }] };
  }
  return parseConfigText(text, env, now);
}

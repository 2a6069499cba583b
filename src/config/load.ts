/**
 * Reads, interpolates and validates a config file (or the environment alone); returns a frozen
 * Config or every problem at once. `MCPGATE_<PATH>` variables are laid over the file's values.
 */
import { readFile } from 'node:fs/promises';
import { isPair, isScalar, isSeq, parseDocument, visit } from 'yaml';
import type { YAMLError } from 'yaml';
import { interpolate } from './interpolate.ts';
import { configSpec } from './schema.ts';
import type { Config } from './schema.ts';
import { crossChecks } from './checks.ts';
import type { Issue } from './spec.ts';
import { attributeIssues, overlayEnv } from './env.ts';

export { hasConfigVariables } from './env.ts';

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
      message: yamlMessage(err, text),
      severity: 'error',
    });
  }
  // A `__proto__` key is dropped by the conversion below: reported as the unknown field it is.
  visit(doc, {
    Pair(_, pair, ancestors) {
      if (isScalar(pair.key) && pair.key.value === '__proto__')
        issues.push({ path: pathOf([...ancestors, pair]), message: 'unknown field', severity: 'error' });
    },
  });
  if (issues.length > 0) return { config: undefined, issues };
  let tree: unknown;
  try {
    tree = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // The library's message quotes the alias, which may be a secret written unquoted (`*A1b...`).
    issues.push({ path: '(yaml)', message: aliasProblem(err), severity: 'error' });
    return { config: undefined, issues };
  }
  const raw = interpolate(tree ?? {}, env, issues);
  return parseConfigTree(raw, env, now, issues);
}

/**
 * With no config file: the `MCPGATE_<PATH>` variables alone (see env.ts), so a sidecar can be
 * configured entirely from its manifest.
 */
export function parseConfigEnv(env: Readonly<Record<string, string | undefined>>, now: number): LoadResult {
  return parseConfigTree({}, env, now, []);
}

/** Lays the environment over an (interpolated) tree, then validates it: schema and cross checks in one pass. */
function parseConfigTree(
  tree: unknown,
  env: Readonly<Record<string, string | undefined>>,
  now: number,
  issues: Issue[],
): LoadResult {
  const unresolved = new Set(issues.map((i) => i.path));
  const later: Issue[] = [];
  const { raw, sources } = overlayEnv(tree, env, later);
  const config = configSpec.parse(raw, '', later);
  // Cross-field checks run on the raw tree in the same pass, so every problem is reported at once.
  crossChecks(raw, now, later);
  // A value whose variable is unset is reported once, not again as an invalid value.
  for (const issue of attributeIssues(later, sources)) if (!unresolved.has(issue.path)) issues.push(issue);
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

/** A config file when `path` is given, else the environment alone. */
export function loadConfigFrom(
  path: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  now: number,
): Promise<LoadResult> {
  return path === undefined ? Promise.resolve(parseConfigEnv(env, now)) : loadConfig(path, env, now);
}

/** The config path (`keys[0].__proto__`) of the last of `nodes`, a YAML node and its ancestors. */
function pathOf(nodes: readonly unknown[]): string {
  let path = '';
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i];
    if (isPair(node) && isScalar(node.key)) path += `${path === '' ? '' : '.'}${String(node.key.value)}`;
    else if (isSeq(node) && i + 1 < nodes.length) path += `[${node.items.indexOf(nodes[i + 1] as never)}]`;
  }
  return path;
}

/** The shortest run of the text's characters that a YAML message may not repeat. */
const QUOTE_RUN = 6;

/**
 * The first line of a YAML error's message, unless it quotes the text it points at. Some do (`Block
 * scalar header includes extra characters: <it>`, `Could not resolve tag: <it>`, `Invalid escape
 * sequence <it>`): a secret written unquoted that starts with `|`, `>` or `!` would be printed by
 * `validate` and logged by a reload. Whatever the library's wording, a message that holds
 * QUOTE_RUN characters in a row of the line(s) it points at is replaced by one that quotes nothing.
 */
function yamlMessage(err: YAMLError, text: string): string {
  const message = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
  const [start, end] = err.pos;
  const from = text.lastIndexOf('\n', Math.max(0, start - 1)) + 1;
  const to = text.indexOf('\n', Math.max(start, end));
  const around = text.slice(from, to === -1 ? text.length : to);
  const escape = /^(Invalid escape sequence) /.exec(message);
  if (escape) return `${escape[1]} in a double-quoted value (a backslash is written \\\\ there)`;
  for (let i = 0; i + QUOTE_RUN <= message.length; i++) {
    if (around.includes(message.slice(i, i + QUOTE_RUN)))
      return `invalid YAML here (${err.code}; the message is not shown: it quotes the text, which may be a secret: quote the value)`;
  }
  return message || 'invalid YAML';
}

/** What a failed conversion of the YAML says, without quoting any of it. */
function aliasProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  if (/alias count/i.test(message)) return 'too many alias expansions (an alias bomb?)';
  if (/alias/i.test(message))
    return 'an alias (`*name`) names no anchor: a value that starts with `*` must be quoted ("*...")';
  return 'invalid YAML';
}

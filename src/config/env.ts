/**
 * Configuration from the environment: every field can come from `MCPGATE_<PATH>`, the path's dots
 * and brackets written as underscores, upper case (`upstream.url` -> `MCPGATE_UPSTREAM_URL`,
 * `auth.oauth.grants` -> `MCPGATE_AUTH_OAUTH_GRANTS`). Lists and mappings take JSON; the rest is
 * the text a YAML file would hold. Fields inside list items come with their list.
 *
 * Variables are laid over the file's values (a variable wins, as with oauth2-proxy), or over
 * nothing when there is no file, so a sidecar can be configured entirely from its manifest. A
 * variable that looks like a config field but is not one is reported, so a typo does not pass
 * silently.
 */
import { configSpec } from './schema.ts';
import type { Issue, Spec } from './spec.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';

export const ENV_PREFIX = 'MCPGATE_';

/** `MCPGATE_` variables that are not config fields. */
export const NON_FIELD_VARIABLES: ReadonlySet<string> = new Set([
  'MCPGATE_CONFIG', // the config file's path
  'MCPGATE_SESSION_SECRET', // read when auth.session_secret is unset (kept for existing deployments)
]);

export interface EnvField {
  /** The variable, e.g. MCPGATE_UPSTREAM_URL. */
  readonly name: string;
  /** The config path, e.g. upstream.url. */
  readonly path: string;
  readonly keys: readonly string[];
  readonly spec: Spec<unknown>;
  /** JSON (a list or a mapping) rather than plain text. */
  readonly json: boolean;
}

export function envName(keys: readonly string[]): string {
  return (
    ENV_PREFIX +
    keys
      .join('_')
      .replace(/[.[\]]/g, '_')
      .toUpperCase()
  );
}

/** Every field reachable through mappings, parents before their fields. */
export function envFields(root: Spec<unknown> = configSpec as Spec<unknown>): readonly EnvField[] {
  const out: EnvField[] = [];
  const walk = (spec: Spec<unknown>, keys: string[]) => {
    for (const [key, field] of Object.entries(spec.doc.fields ?? {})) {
      const at = [...keys, key];
      const doc = field.doc;
      const json = doc.type === 'mapping' || doc.type.startsWith('list of') || doc.type.startsWith('map of');
      out.push(Object.freeze({ name: envName(at), path: at.join('.'), keys: at, spec: field, json }));
      if (doc.fields) walk(field, at);
    }
  };
  walk(root, []);
  return Object.freeze(out);
}

const FIELDS = envFields();
const BY_NAME = new Map(FIELDS.map((f) => [f.name, f]));
const TOP_LEVEL = FIELDS.filter((f) => f.keys.length === 1).map((f) => f.name);

/** Whether any `MCPGATE_<PATH>` config variable is set. */
export function hasConfigVariables(env: Readonly<Record<string, string | undefined>>): boolean {
  return Object.keys(env).some((name) => env[name] !== '' && BY_NAME.has(name));
}

export interface EnvOverlay {
  /** The config tree with the variables laid over it. */
  readonly raw: unknown;
  /** Config path -> the variable it came from (to name it in problems). */
  readonly sources: ReadonlyMap<string, string>;
}

/** Lays the `MCPGATE_<PATH>` variables over `raw` (a parsed config tree, not changed). */
export function overlayEnv(
  raw: unknown,
  env: Readonly<Record<string, string | undefined>>,
  issues: Issue[],
): EnvOverlay {
  // A document that is not a mapping is left for the schema to report.
  if (raw !== undefined && raw !== null && !isPlainObject(raw)) return { raw, sources: new Map() };
  const tree: Record<string, unknown> = isPlainObject(raw) ? structuredClone(raw) : {};
  const sources = new Map<string, string>();
  for (const field of FIELDS) {
    const text = env[field.name];
    if (text === undefined || text === '') continue;
    let value: unknown = text;
    if (field.json) {
      try {
        value = JSON.parse(text) as unknown;
      } catch {
        issues.push({ path: field.path, message: `${field.name} is not valid JSON`, severity: 'error' });
        continue;
      }
    } else if (field.spec.doc.type === 'boolean' && (text === 'true' || text === 'false')) {
      value = text === 'true';
    }
    set(tree, field.keys, value);
    sources.set(field.path, field.name);
  }
  for (const name of Object.keys(env)) {
    if (!name.startsWith(ENV_PREFIX) || BY_NAME.has(name) || NON_FIELD_VARIABLES.has(name)) continue;
    if (TOP_LEVEL.some((top) => name.startsWith(`${top}_`)))
      issues.push({ path: name, message: 'not a config field (ignored)', severity: 'warning' });
  }
  return { raw: tree, sources };
}

/** Sets a value at a path, making (or replacing non-mapping) parents; a mapping value is merged. */
function set(tree: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (!isPlainObject(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1] as string;
  const old = node[last];
  node[last] = isPlainObject(old) && isPlainObject(value) ? { ...old, ...value } : value;
}

/** Names the variable a problem's value came from: `upstream.url: ... (from MCPGATE_UPSTREAM_URL)`. */
export function attributeIssues(issues: Issue[], sources: ReadonlyMap<string, string>): Issue[] {
  if (sources.size === 0) return issues;
  return issues.map((issue) => {
    let best: [string, string] | undefined;
    for (const [path, name] of sources) {
      const within =
        issue.path === path || issue.path.startsWith(`${path}.`) || issue.path.startsWith(`${path}[`);
      if (within && (best === undefined || path.length > best[0].length)) best = [path, name];
    }
    if (best === undefined || issue.message.includes(best[1])) return issue;
    return { ...issue, message: `${issue.message} (from ${best[1]})` };
  });
}

function cell(f: EnvField): string {
  // Types of one-of fields come with their pipes already escaped for Markdown.
  const type = f.spec.doc.type;
  return f.json ? `JSON (${type})` : type;
}

/** The README's table of variables, generated from the schema. */
export function renderEnvReference(): string {
  const rows = ['| variable | field | value |', '| --- | --- | --- |'];
  for (const f of FIELDS) rows.push(`| \`${f.name}\` | \`${f.path}\` | ${cell(f)} |`);
  return rows.join('\n');
}

/**
 * `${VAR}` and `${VAR:-default}` interpolation over the string values of a parsed YAML tree (never
 * over raw text, so an environment value cannot inject YAML structure). `$${` is a literal `${`.
 */
import type { Issue } from './spec.ts';

/** How environment variables are named (upper case): only such a name is quoted in an error. */
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}\\]|\\.)*))?\}|\$\{([^}]*)\}?/g;

export function interpolate(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  issues: Issue[],
  path = '',
): unknown {
  if (typeof value === 'string') return interpolateString(value, env, issues, path);
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, issues, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = interpolate(v, env, issues, path ? `${path}.${k}` : k);
    return out;
  }
  return value;
}

function interpolateString(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  issues: Issue[],
  path: string,
): string {
  if (!text.includes('$')) return text;
  return text.replace(PATTERN, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$${') return '${';
    if (name === undefined) {
      // What follows `${` is not quoted: it may be a secret's own text that holds `${`.
      issues.push({
        path,
        message: 'invalid interpolation: write ${NAME} or ${NAME:-default}, or $${ for a literal ${',
        severity: 'error',
      });
      return '';
    }
    const found = env[name];
    if (found !== undefined && found !== '') return found;
    if (fallback !== undefined) return fallback.replace(/\\(.)/g, '$1');
    issues.push({
      path,
      // Only a name spelled as environment variables are is shown: `${Tk3f}` may be a secret's text.
      message: ENV_NAME.test(name)
        ? `environment variable ${name} is not set`
        : 'names an environment variable that is not set (its name is not shown: it may be part of a secret; write $${ for a literal ${)',
      severity: 'error',
    });
    return '';
  });
}

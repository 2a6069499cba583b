/** The `roots` list of a key and of an OAuth claim grant (schema.ts, oauth-schema.ts). */
import { array, string } from './spec.ts';
import type { Issue } from './spec.ts';
import { resourcePatternProblem } from '../policy/resource-uri.ts';

/**
 * Root URI patterns (policy/roots.ts): what a client's answer to `roots/list` may name, in the
 * pattern language and with the spelling rule of `resources`.
 */
export const rootPatterns = (who: string) =>
  array(
    string('A root URI or a wildcard (`*`), as in `resources`.', { check: resourcePatternProblem }),
    `Roots ${who} may lend the upstream: the roots in a client's answer to \`roots/list\` (or, 2026-07-28, ` +
      `in a request's \`inputResponses\`) whose \`uri\` matches none are removed before the upstream gets it ` +
      '(deny by default: a roots-aware server may take the roots it is lent in place of its own directories). ' +
      'End a folder with `/*`: `file:///work/project*` also lends `file:///work/project-old` (a warning says so).',
    { default: [] },
  );

/**
 * Warns of root patterns whose wildcard follows a partial path segment (`file:///work/project*`):
 * a root is a directory, and such a pattern also lends its siblings (`/work/project-secrets`),
 * which `file:///work/project/*` (the folder's inside) would not. A warning, not an error: a prefix
 * may be meant (`file:///home/team-*`).
 */
export function rootPatternWarnings(patterns: unknown, at: string, issues: Issue[]): void {
  if (!Array.isArray(patterns)) return;
  patterns.forEach((pattern, i) => {
    if (typeof pattern !== 'string') return;
    const star = pattern.indexOf('*');
    if (star <= 0 || pattern[star - 1] === '/' || !PATH_BEGUN.test(pattern.slice(0, star))) return;
    issues.push({
      path: `${at}[${i}]`,
      message: `also lends every sibling that begins the same (${pattern.slice(0, star)}-old, ...): end it with /* to lend only inside that folder`,
      severity: 'warning',
    });
  });
}

/** A scheme, `//` and an authority, then a path with at least one character after its first `/`. */
const PATH_BEGUN = /^[a-z][a-z0-9+.-]*:\/\/[^/]*\/./i;

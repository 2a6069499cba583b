/**
 * Allowlist matching. A pattern is an exact name, or a name with `*` wildcards: `*` matches any
 * run of characters, including none and including `/` (so `file:///public/*` also matches
 * `file:///public/a/b.txt`). There is no other special character: `.`, `?`, `[`, `\` ... are literal.
 *
 * Compiled once at start: exact names go in a Set; all wildcard patterns become one anchored RegExp.
 * A plain translation of `*` to `.*` backtracks polynomially (`*a*a*a*b` against a long run of `a`
 * takes O(n^4) steps), and the name being matched comes from the client. So each `*` that is followed
 * by more pattern is compiled as an atomic leftmost search, `(?=([^]*?next))\N`: a glob with only
 * `*` is matched by placing each middle segment at its leftmost possible position, so the search
 * never needs to be retried and matching stays linear in the name for a fixed pattern.
 */

/** Always false: an empty list allows nothing. */
const NONE = (): boolean => false;
/** Always true: the pattern `*`. */
const ALL = (): boolean => true;

export function compileMatcher(patterns: readonly string[]): (name: string) => boolean {
  if (!Array.isArray(patterns)) throw new TypeError('compileMatcher: patterns must be an array of strings');
  const exact = new Set<string>();
  const alternatives: string[] = [];
  let group = 0;
  for (const pattern of patterns) {
    if (typeof pattern !== 'string') throw new TypeError('compileMatcher: every pattern must be a string');
    if (!pattern.includes('*')) {
      exact.add(pattern);
      continue;
    }
    // `**` is the same as `*`.
    const parts = pattern.split('*');
    const segments = parts.filter((part, i) => part !== '' || i === 0 || i === parts.length - 1);
    if (segments.every((s) => s === '')) return ALL;
    const first = segments[0] as string;
    const last = segments[segments.length - 1] as string;
    let source = escape(first);
    for (let i = 1; i < segments.length - 1; i++) {
      group++;
      source += `(?=([^]*?${escape(segments[i] as string)}))\\${group}`;
    }
    source += `[^]*${escape(last)}`;
    alternatives.push(source);
  }
  if (alternatives.length === 0) {
    if (exact.size === 0) return NONE;
    return (name) => exact.has(name);
  }
  const regex = new RegExp(`^(?:${alternatives.join('|')})$`);
  if (exact.size === 0) return (name) => regex.test(name);
  return (name) => exact.has(name) || regex.test(name);
}

function escape(literal: string): string {
  return literal.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

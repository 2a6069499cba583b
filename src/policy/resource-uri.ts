/**
 * Whether a resource URI is spelled plainly enough for a wildcard to confine it. A key's `resources`
 * are globs matched as strings, and `*` matches `/`, but the upstream does not read the string: it
 * parses it (`new URL()`, which trims spaces and removes dot segments; the v1 SDK server reads
 * `new URL(uri).toString()`), matches it against templates, percent-decodes the variables and joins
 * them to a directory (`path.resolve`, Python's `Path(base) / name`, `posixpath.normpath`), and some
 * normalise Unicode (NFKC makes `．．` `..`). A list of spellings that climb out (`..`, `%2e%2e`,
 * `//`, `\`, ...) was a blocklist, and each resolver added to it found another (`.. ` trimmed to
 * `..`, `‥`, `doc-..` under a `doc-{name}` template). So the part after the scheme and authority
 * must be made of what no resolver reads twice, an allowlist:
 *
 * - as written: ASCII letters, digits, `-._~`, the URI delimiters `!$&'()*+,;=:@/?#`, a percent
 *   encoding, a non-ASCII character, or an RFC 6570 expression (`{id}`, `{+path}`: a listed template
 *   is judged by the same rule as the URIs it makes); in the path, no encoded `/`: a slash a
 *   variable carries, which starts a rooted name when the variable starts there (`doc-%2Fetc` is
 *   `/etc` to `doc-{name}`), and which a path has no plain use for (a query value may carry one);
 * - percent-decoded once (what a template variable's handler reads): no `%` (double encoding), no `\`,
 *   no control, format, private-use or unassigned character, no whitespace but the space, and only
 *   non-ASCII characters that NFKC leaves as they are;
 * - and, decoded, split at `/ ? # = & ; ,`: no segment `.` or ending in `..` (a template variable
 *   may start anywhere in a segment: `file:///public/doc-..` is `..` to `doc-{name}`), and no `/`
 *   starting a segment but after `#` (a rooted name replaces the base; a fragment route, `#/home`,
 *   is common, and no SDK template hands a fragment over without its `#`). Spaces around a segment
 *   count for nothing, as a handler that trims them would read it.
 *
 * What it cannot see is where the upstream's variable starts: a template with a literal before a
 * variable that takes the rest of the path (`doc-{+path}` given `doc-/etc/passwd`) is the
 * operator's to avoid, by ending each wildcard pattern's literal part with `/` (README).
 */
export function plainResourceUri(uri: string): boolean {
  const rest = uri.slice(AUTHORITY.exec(uri)?.[0].length ?? 0);
  if (!WRITTEN.test(rest) || ENCODED_SLASH.test(rest)) return false;
  let name: string;
  try {
    name = decodeURIComponent(rest);
  } catch {
    return false; // a `%` not followed by two hex digits, or bytes that are not UTF-8
  }
  if (DECODED_OUT.test(name) || !nfkcStable(name)) return false;
  return !DOT_SEGMENT.test(name) && !ROOTED.test(name);
}

/** `scheme:` and, after `//`, the authority: `file:///` is no empty segment. */
const AUTHORITY = /^[a-z][a-z0-9+.-]*:(?:[/\\]{2}[^/\\?#]*)?/i;
const WRITTEN = /^(?:[\w.~!$&'()*+,;=:@/?#-]|%[0-9a-f]{2}|\P{ASCII}|\{[+#./;?&]?[\w.,*:]+\})*$/iu;
/** In the path (before `?` or `#`): a query value may carry a path (`URLSearchParams` encodes `/`). */
const ENCODED_SLASH = /^[^?#]*%2f/i;
const DECODED_OUT = /[%\\\p{C}]|(?! )\p{White_Space}/u;
const DOT_SEGMENT = /(?:^|[/?#=&;,]) *\. *(?=[/?#=&;,]|$)|\.\. *(?=[/?#=&;,]|$)/;
const ROOTED = /[/?=&;,] *\//;
const NON_ASCII = /\P{ASCII}/gu;

function nfkcStable(name: string): boolean {
  for (const [c] of name.matchAll(NON_ASCII)) if (c.normalize('NFKC') !== c) return false;
  return true;
}

/**
 * A config problem with a resource pattern (else undefined). A `*` matches any run of characters, so
 * one in a pattern's scheme or host, or after its host with no `/` between, also matches the `/`,
 * `?`, `#` or `@` that ends the host: `https://*.example.com/*` matches
 * `https://evil.example/.example.com/`, and `https://api.example.com*` matches
 * `https://api.example.com@evil.example/`, whose host is another. `scheme://*` (any host) is kept.
 */
export function resourcePatternProblem(pattern: string): string | undefined {
  const start = pattern.indexOf('://');
  if (start === -1) return undefined;
  const rest = pattern.slice(start + 3);
  const end = rest.search(/[/?#]/);
  const authority = end === -1 ? rest : rest.slice(0, end);
  if (!pattern.slice(0, start).includes('*') && (!authority.includes('*') || authority === '*'))
    return undefined;
  return 'a wildcard in the scheme or host also matches other hosts (`https://*.example.com/*` matches `https://evil.example/.example.com/`): write the scheme and host out, wildcards after the `/` that ends the host';
}

/**
 * Checks that span several fields: duplicate keys, hash formats, dates, `backend: redis` without
 * Redis. They read the raw (interpolated) tree, not the parsed config, so they run in the same pass
 * as the schema and `validate` reports every problem at once, even when the schema found others.
 * Values of the wrong type are left to the schema (it reports them); these checks skip them.
 */
import type { Issue } from './spec.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';
import { parseKeyHash } from '../auth/key-hash.ts';
import { passHeaderProblem, PASSED_RESPONSE_HEADERS } from '../proxy/response-headers.ts';
import {
  FORWARDED_CLIENT_HEADERS,
  forwardHeaderProblem,
  PARAM_PREFIX,
  staticHeaderProblem,
} from '../proxy/request-headers.ts';
import { oauthChecks } from './oauth-checks.ts';
import { rootPatternWarnings } from './root-patterns.ts';
import { HEADER_NAME } from '../proxy/header-names.ts';
import { RESERVED_KEY_LABELS } from '../metrics/labels.ts';

export function crossChecks(raw: unknown, now: number, issues: Issue[]): void {
  const root = isPlainObject(raw) ? raw : {};
  const keys = Array.isArray(root.keys) ? (root.keys as unknown[]) : [];
  const auth = isPlainObject(root.auth) ? root.auth : {};
  const rateLimit = isPlainObject(root.rate_limit) ? root.rate_limit : {};
  const labels = new Map<string, number>();
  const hashes = new Map<string, number>();
  keys.forEach((key, i) => {
    if (!isPlainObject(key)) return;
    const at = `keys[${i}]`;
    if (typeof key.label === 'string') {
      const first = labels.get(key.label);
      if (first !== undefined) error(issues, `${at}.label`, `duplicate label (also keys[${first}])`);
      else labels.set(key.label, i);
      if (RESERVED_KEY_LABELS.includes(key.label))
        issues.push({
          path: `${at}.label`,
          message: `"${key.label}" is also what metrics call requests of no configured key: this key's are counted with them (choose another label)`,
          severity: 'warning',
        });
    }
    if (typeof key.hash === 'string') {
      const digest = parseKeyHash(key.hash);
      if (digest === undefined) error(issues, `${at}.hash`, hashProblem(key.hash));
      else {
        const first = hashes.get(digest);
        if (first !== undefined) error(issues, `${at}.hash`, `duplicate hash (also keys[${first}])`);
        else hashes.set(digest, i);
      }
    }
    rootPatternWarnings(key.roots, `${at}.roots`, issues);
    if (typeof key.expires === 'string') {
      const when = parseExpiry(key.expires);
      if (when === undefined)
        error(
          issues,
          `${at}.expires`,
          'not an ISO 8601 date or time (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)',
        );
      else if (when <= now)
        issues.push({
          path: `${at}.expires`,
          message: 'is in the past: this key is refused',
          severity: 'warning',
        });
    }
  });
  headerChecks(isPlainObject(root.upstream) ? root.upstream : {}, issues);
  if (rateLimit.backend === 'redis' && (rateLimit.redis === undefined || rateLimit.redis === null)) {
    error(issues, 'rate_limit.redis.url', 'is required when backend is redis');
  }
  transportCheck(isPlainObject(root.upstream) ? root.upstream : {}, issues);
  reservedPathCheck(isPlainObject(root.upstream) ? root.upstream : {}, issues);
  const unauthenticated = auth.allow_unauthenticated === true;
  if (Array.isArray(root.keys) || root.keys === undefined || root.keys === null) {
    if (keys.length === 0 && !unauthenticated && !isPlainObject(auth.oauth))
      issues.push({
        path: 'keys',
        message: 'no keys configured: every request will be refused (run `mcpgate keygen`)',
        severity: 'warning',
      });
  }
  if (unauthenticated && keys.length > 0)
    error(issues, 'auth.allow_unauthenticated', 'cannot be combined with keys');
  oauthChecks(root, issues);
}

/** Says which transport `upstream.url` looks like when `upstream.transport` probably does not match. */
function transportCheck(upstream: Record<string, unknown>, issues: Issue[]): void {
  const transport = upstream.transport ?? 'streamable-http';
  if (typeof upstream.url !== 'string' || (transport !== 'sse' && transport !== 'streamable-http')) return;
  const looksLike = transportOfPath(upstream.url);
  if (looksLike === undefined || looksLike === transport) return;
  issues.push({
    path: 'upstream.url',
    message:
      looksLike === 'sse'
        ? 'looks like an HTTP+SSE (2024-11-05) stream URL: set upstream.transport: sse if the server speaks that transport'
        : 'looks like a Streamable HTTP endpoint, but upstream.transport is sse (its SSE stream is usually /sse)',
    severity: 'warning',
  });
}

/** The gateway's own paths on its listener (routes.ts): the MCP endpoint, at upstream.url's path, wins. */
const RESERVED_PATHS = ['/healthz', '/readyz', '/metrics'];
const WELL_KNOWN = '/.well-known/';

/** Says when the MCP endpoint (upstream.url's path) takes a path the gateway serves itself. */
function reservedPathCheck(upstream: Record<string, unknown>, issues: Issue[]): void {
  if (typeof upstream.url !== 'string' || !URL.canParse(upstream.url)) return;
  const path = new URL(upstream.url).pathname;
  if (!RESERVED_PATHS.includes(path) && !path.startsWith(WELL_KNOWN)) return;
  issues.push({
    path: 'upstream.url',
    message: `its path ${path} is the MCP endpoint's, so the gateway's own ${path} is not served (health probes, metrics or OAuth discovery reach the upstream's MCP endpoint instead)`,
    severity: 'warning',
  });
}

/** What is wrong with a configured hash, with a hint at what to do. */
export function hashProblem(value: string): string {
  const text = value.trim();
  if (text.startsWith('mcpg_'))
    return 'this is a key, not its hash: run `mcpgate hash` and paste what it prints (never put the key itself in the config)';
  const hex = text.startsWith('sha256:') ? text.slice(7) : text;
  if (/^[0-9a-fA-F]*$/.test(hex))
    return `not a sha256 hash: ${hex.length} hex digits, expected 64 (sha256:<64 lower-case hex>, as printed by \`mcpgate keygen\` or \`mcpgate hash\`)`;
  return 'not a sha256 hash (expected sha256:<64 lower-case hex> or 64 hex digits, as printed by `mcpgate keygen` or `mcpgate hash`)';
}

function error(issues: Issue[], path: string, message: string): void {
  issues.push({ path, message, severity: 'error' });
}

/** upstream.forward_headers, pass_headers and headers never carry what the gateway must write or drop. */
function headerChecks(upstream: Record<string, unknown>, issues: Issue[]): void {
  const forward = Array.isArray(upstream.forward_headers) ? (upstream.forward_headers as unknown[]) : [];
  forward.forEach((name, i) => {
    if (typeof name !== 'string') return;
    const problem = forwardHeaderProblem(name);
    if (problem !== undefined) error(issues, `upstream.forward_headers[${i}]`, said(name, problem));
    else if (
      FORWARDED_CLIENT_HEADERS.includes(name.toLowerCase()) ||
      name.toLowerCase().startsWith(PARAM_PREFIX)
    )
      issues.push({
        path: `upstream.forward_headers[${i}]`,
        message: `${name} is forwarded anyway`,
        severity: 'warning',
      });
  });
  const pass = Array.isArray(upstream.pass_headers) ? (upstream.pass_headers as unknown[]) : [];
  pass.forEach((name, i) => {
    if (typeof name !== 'string') return;
    const problem = passHeaderProblem(name);
    if (problem !== undefined) error(issues, `upstream.pass_headers[${i}]`, said(name, problem));
    else if (PASSED_RESPONSE_HEADERS.includes(name.toLowerCase()))
      issues.push({
        path: `upstream.pass_headers[${i}]`,
        message: `${name} is passed anyway`,
        severity: 'warning',
      });
  });
  const fixed = isPlainObject(upstream.headers) ? upstream.headers : {};
  Object.keys(fixed).forEach((name, i) => {
    const problem = staticHeaderProblem(name);
    if (problem === undefined) return;
    if (HEADER_NAME.test(name)) error(issues, `upstream.headers.${name}`, problem);
    else error(issues, 'upstream.headers', `entry ${i + 1}: ${said(name, problem)}`);
  });
}

/**
 * A problem with a configured header name, quoting the name only when it is a valid one. What is not
 * a header name may be a whole header line, its value a credential (`Authorization: Bearer ...` in
 * forward_headers), which `validate` would print and a reload would log.
 */
function said(name: string, problem: string): string {
  return HEADER_NAME.test(name)
    ? `${name} ${problem}`
    : `${problem} (not shown: it may hold a header value, such as a credential)`;
}

/** The transport a URL's last path segment suggests (`/sse`, `/mcp`), if any. */
function transportOfPath(url: string): 'sse' | 'streamable-http' | undefined {
  if (!URL.canParse(url)) return undefined;
  const path = new URL(url).pathname.replace(/\/+$/, '');
  const last = path.slice(path.lastIndexOf('/') + 1).toLowerCase();
  if (last === 'sse') return 'sse';
  if (last === 'mcp') return 'streamable-http';
  return undefined;
}

/**
 * Dates without a time (2027-01-31) expire at the end of that day, UTC. A day its month does not
 * have is refused: Date.parse rolls `2026-04-31` over to May 1 and `2027-02-29` to March 1, so a
 * key meant to end with April was let in a day longer, and validate said ok.
 */
export function parseExpiry(value: string): number | undefined {
  const date = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  if (date === null) return undefined;
  const [year, month, day] = [Number(date[1]), Number(date[2]), Number(date[3])];
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate())
    return undefined;
  if (value.length === 10) {
    const start = Date.parse(`${value}T00:00:00Z`);
    return Number.isNaN(start) ? undefined : start + 86_400_000;
  }
  if (value[10] !== 'T') return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Upstream trouble in the operational log, so an operator sees it without reading audit lines:
 * one line per kind of failure (refused, unreachable, reset, timed out, protocol error), at most
 * once per interval with a count of the occurrences it stands for. Fed from the one place upstream
 * failures are mapped (the relay's end, via the observer). The configured origin is named (the
 * operator's own setting); nothing from the request is.
 */
import type { RateLimitedLog } from '../log/rate-limited.ts';
import type { UpstreamErrorKind } from './upstream-error.ts';

export interface UpstreamLogOptions {
  /** The configured upstream origin (logged; never sent to clients). */
  readonly origin: string;
  readonly headersTimeoutMs: number;
}

const WHAT: Readonly<Record<UpstreamErrorKind, string>> = {
  refused: 'upstream refused the connection: is the MCP server running and listening there?',
  reset: 'upstream closed the connection before the response was complete',
  timeout: 'upstream did not answer in time',
  protocol: 'upstream sent a response that is not valid HTTP or MCP',
  auth: "upstream refused the gateway's own credentials (check upstream.headers)",
  other: 'upstream request failed',
};

/** Error codes that mean the host itself could not be reached (not merely a closed port). */
const UNREACHABLE = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export function createUpstreamLog(limited: RateLimitedLog, options: UpstreamLogOptions) {
  return function upstreamFailed(kind: UpstreamErrorKind, error: unknown): void {
    // A 401/403 from the upstream is logged (rate-limited) where the response head is judged.
    if (kind === 'auth') return;
    const code = errorCode(error);
    const unreachable = code !== undefined && UNREACHABLE.has(code);
    const key = unreachable ? 'unreachable' : kind;
    const msg = unreachable
      ? 'upstream host unreachable: check upstream.url and the network path to it'
      : kind === 'timeout'
        ? `${WHAT.timeout} (upstream.timeout ${options.headersTimeoutMs} ms for quick methods, upstream.call_timeout for tool calls)`
        : WHAT[kind];
    limited(`upstream:${key}`, 'warn', { upstream: options.origin, kind: key, code }, msg);
  };
}

/** The first error code found on the error or its causes (e.g. ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT). */
function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    current = current.cause;
  }
  return undefined;
}

/**
 * The configuration schema: the one place that says which fields exist, their types, defaults and
 * meaning. The README's config reference is generated from it (scripts/config-reference.ts).
 */
import { checkHttpUrl } from './http-url.ts';
import { array, boolean, duration, number, object, oneOf, record, size, string } from './spec.ts';
import type { Spec } from './spec.ts';
import { normalizeOrigin } from '../server/cors.ts';
import { oauthSpec } from './oauth-schema.ts';
import { resourcePatternProblem } from '../policy/resource-uri.ts';
import { rootPatterns } from './root-patterns.ts';

export const DEFAULTS = Object.freeze({
  listen: '127.0.0.1:8080',
  upstreamTimeout: '30s',
  upstreamCallTimeout: '10m',
  upstreamConnections: 256,
  maxBodyBytes: '4MiB',
  keepalive: '15s',
  shutdownGrace: '10s',
  rateCapacity: 60,
  rateRefill: 1,
  maxStreams: 10,
  idleReclaim: '10s',
  sendTimeout: '60s',
});

const listen = string('Address the gateway listens on, `host:port`.', {
  default: DEFAULTS.listen,
  check: (v) => (parseListen(v) ? undefined : 'must be host:port with a port from 0 to 65535'),
});

const publicUrl = string(
  'The URL clients use for the MCP endpoint (absolute http or https), when it differs from the listen address ' +
    '(a reverse proxy, a DNS name); used for X-Forwarded-Host, allowed hosts, and the OAuth resource identifier.',
  {
    check: (v) => checkHttpUrl(v),
  },
);

const server = object(
  {
    allowed_hosts: array(
      string('A host name or IP address (any port), or `*`.', {
        check: (v) =>
          v === '*' ||
          /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(
            v,
          ) ||
          /^\[?[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]?$/.test(v)
            ? undefined
            : 'must be a host name or IP address without a port (e.g. mcp.example.com), or *',
      }),
      'Host names served besides `localhost`, `127.0.0.1`, `[::1]` and the host of `public_url` (DNS rebinding ' +
        'protection; other hosts get 403). On a loopback listener the check is always on; on any other (0.0.0.0) ' +
        'it is off unless this list is set. `*` turns it off.',
      { default: [] },
    ),
  },
  'The listener.',
);

const cors = object(
  {
    allowed_origins: array(
      string('An origin, `https://app.example.com`.', {
        check: (v) =>
          normalizeOrigin(v) ? undefined : 'must be an http or https origin (scheme://host[:port], no path)',
      }),
      'Browser origins allowed to call the gateway (CORS): the gateway answers their preflight and adds ' +
        'Access-Control-* headers to every response. A request with any other `Origin` gets 403.',
      { default: [] },
    ),
  },
  'Cross-origin (browser) clients.',
);

const upstream = object(
  {
    url: string('The upstream MCP endpoint (http or https). The gateway serves MCP on the same path.', {
      check: (v) =>
        checkHttpUrl(v, {
          credentials: 'must not contain credentials (use upstream.headers)',
          fragment: true,
        }),
    }),
    transport: oneOf(
      ['streamable-http', 'sse'],
      'How the upstream speaks MCP: `streamable-http` (2025-03-26 and later) or `sse`, the older ' +
        'HTTP+SSE transport (2024-11-05), where `url` is its SSE stream. Clients use the same transport.',
      { default: 'streamable-http' },
    ),
    timeout: duration(
      'Time allowed to connect and for the response headers of quick methods (initialize, lists, pings, GET streams).',
      { default: DEFAULTS.upstreamTimeout, min: 1 },
    ),
    call_timeout: duration(
      'Time allowed for the response headers of a `tools/call` or `tasks/result`: a tool answered as plain JSON sends them only when it is done.',
      { default: DEFAULTS.upstreamCallTimeout, min: 1 },
    ),
    tool_timeouts: record(
      duration('Time allowed for this tool.', { min: 1 }),
      'Per tool name or wildcard, overrides `call_timeout` (exact names win over wildcards).',
    ),
    headers: record(
      string('Header value.', {
        check: (v) =>
          /^[\t\x20-\x7e\x80-\xff]*$/.test(v) ? undefined : 'must not contain control characters',
      }),
      "Static headers added to every upstream request, last (e.g. the upstream's own credential from `${ENV}`). " +
        'They may not set what describes the body or the connection (Host, Content-Type, Content-Length, ' +
        'Content-Encoding, Accept-Encoding, Mcp-Session-Id, hop-by-hop headers).',
    ),
    forward_headers: array(
      string('A header name.'),
      'Client headers forwarded to the upstream besides the MCP ones (Accept, MCP-Protocol-Version, ' +
        'Mcp-Session-Id and Last-Event-ID (translated), Mcp-Method, Mcp-Name, Mcp-Param-*) and User-Agent; every other client header is dropped. ' +
        'Credentials, hop-by-hop headers, headers the gateway writes and method or URL overrides are refused.',
      { default: [] },
    ),
    pass_headers: array(
      string('A header name.'),
      'Upstream response headers passed to the client besides Content-Type, Cache-Control, ' +
        'Retry-After (on 429 and 503) and Mcp-Session-Id (translated); every other upstream header is dropped. ' +
        'Headers that describe the upstream (Location, WWW-Authenticate, Set-Cookie, Server, X-Powered-By, ' +
        'Access-Control-*), hop-by-hop headers and headers the gateway writes are refused.',
      { default: [] },
    ),
    connections: number(
      'Maximum keep-alive connections to the upstream for requests (streams, capped by `max_streams` per key, have connections of their own).',
      {
        default: DEFAULTS.upstreamConnections,
        min: 1,
        integer: true,
      },
    ),
  },
  'The one MCP server behind the gateway.',
  { required: ['url'] },
);

const limits = object(
  {
    max_body_bytes: size('Largest request body accepted (413 beyond it).', {
      default: DEFAULTS.maxBodyBytes,
    }),
    max_buffered_bytes: size(
      "Ceiling on the bytes held at once for all bodies the gateway must read whole (request bodies, list responses being filtered, the SSE event being read; a JSON answer over 64 KiB until its client took it). Over it a request gets 503 and a response 502. One key's request bodies (until their answers end) may hold a quarter of it (at least one body of `max_body_bytes`; 503 beyond); the peeks for refused requests' ids get a sixteenth of it apart. Default: a quarter of the V8 heap limit (`--max-old-space-size`), e.g. 1 GiB of a 4 GiB heap.",
    ),
    send_timeout: duration(
      "Time a response may wait for its client to take any of its bytes while the gateway has some for it (the upstream's side is paused meanwhile). A client that takes nothing for this long is cut, its upstream request cancelled and its audit line written (reason `ERR_CLIENT_STALLED`): a client that stops reading cannot hold an upstream connection, which other keys' requests need.",
      { default: DEFAULTS.sendTimeout, min: 100 },
    ),
    idle_reclaim: duration(
      'Memory given back after a burst: once the gateway has been all but idle for this long (its event loop busy under 1% of the time), it drops its list caches and, when V8 holds 32 MiB more than it uses, runs one memory-reducing collection (one pause per quiet period: about 0.1 s for a small heap, longer with many open streams). `0s` turns it off: the process then keeps the heap its busiest moment grew.',
      { default: DEFAULTS.idleReclaim },
    ),
  },
  'Request limits.',
);

const streams = object(
  {
    keepalive: duration('Idle time after which a `: keepalive` comment is sent on an SSE stream.', {
      default: DEFAULTS.keepalive,
      min: 100,
    }),
  },
  'Long-lived SSE streams.',
);

const shutdown = object(
  {
    grace: duration('On SIGTERM/SIGINT, how long in-flight requests may finish before streams are closed.', {
      default: DEFAULTS.shutdownGrace,
    }),
  },
  'Graceful shutdown.',
);

export const bucket = {
  capacity: number('Bucket size: the burst a key may make.', { min: 1 }),
  refill_per_second: number('Tokens added per second (fractions allowed: 0.0167 is one a minute).', {
    min: 0,
  }),
};

const ownRateLimit = (who: string, description: string) =>
  object(
    {
      ...bucket,
      max_streams: number(`Concurrently open streams (GET, 2026-07-28 subscriptions/listen) for ${who}.`, {
        min: 0,
        integer: true,
      }),
      max_in_flight: number(`Requests (POSTs holding one) at the upstream at once for ${who}.`, {
        min: 1,
        integer: true,
      }),
      tools: record(
        object(bucket, 'A bucket for one tool name or wildcard.', {
          required: ['capacity', 'refill_per_second'],
        }),
        'Extra buckets for expensive tools, by name or wildcard.',
      ),
    },
    description,
    { optional: true },
  );
const keyRateLimit = ownRateLimit('this key', "This key's own limits, overriding `rate_limit`.");

const names = (what: string) =>
  array(
    string(`A ${what} or a wildcard (\`*\`).`),
    `${what[0]!.toUpperCase()}${what.slice(1)}s this key may use (deny by default).`,
    { default: [] },
  );

/** Resource URI patterns: a wildcard in a host would match other hosts (resource-uri.ts). */
export const resourcePatterns = (what: string) =>
  array(
    string(`A ${what} or a wildcard (\`*\`).`, { check: resourcePatternProblem }),
    `${what[0]!.toUpperCase()}${what.slice(1)}s this key may use (deny by default).`,
    { default: [] },
  );

export const keySpec = object(
  {
    label: string('A unique name for the key, shown in the audit log.', {
      check: (v) =>
        // A key pasted here would be written to every audit line (said without quoting it).
        v.toLowerCase().includes('mcpg_')
          ? 'this looks like a key, not a label: a label is a name written to every audit line (never put the key itself in the config)'
          : /^[A-Za-z0-9._@-]{1,64}$/.test(v)
            ? undefined
            : 'must be 1-64 characters of A-Z a-z 0-9 . _ @ -',
    }),
    hash: string('The SHA-256 of the key: `sha256:<64 hex>` or bare hex (as printed by `mcpgate keygen`).'),
    allow: names('tool name'),
    prompts: names('prompt name'),
    resources: resourcePatterns('resource URI'),
    roots: rootPatterns('this key'),
    disabled: boolean('A disabled key is refused.', { default: false }),
    expires: string('Expiry date or time (ISO 8601); refused after it, and its open streams end then.'),
    rate_limit: keyRateLimit,
  },
  'An API key.',
  { required: ['label', 'hash'] },
);

const rateLimit = object(
  {
    capacity: number('Default bucket size per key.', { default: DEFAULTS.rateCapacity, min: 1 }),
    refill_per_second: number('Default tokens added per second per key.', {
      default: DEFAULTS.rateRefill,
      min: 0,
    }),
    max_streams: number(
      'Default cap on concurrently open streams (GET, 2026-07-28 subscriptions/listen) per key.',
      {
        default: DEFAULTS.maxStreams,
        min: 0,
        integer: true,
      },
    ),
    max_in_flight: number(
      "Default cap on the requests (POSTs holding one; not replies, notifications or DELETEs, which the upstream takes at once) a key may have at the upstream at once (429 beyond): one key's slow answers (a tool call waiting on the client's reply to a question, a large answer read slowly) cannot take every one of `upstream.connections`, which every key's requests share. Default: a quarter of `upstream.connections` (64 of 256), at least 1.",
      { min: 1, integer: true },
    ),
    backend: oneOf(['memory', 'redis'], 'Where buckets live: `redis` shares them across replicas.', {
      default: 'memory',
    }),
    redis: object(
      {
        url: string('Redis URL, e.g. `redis://127.0.0.1:6379/0` (`rediss://` for TLS).', {
          // Said without quoting the value: it may hold the password.
          check: (v) => redisUrlProblem(v),
        }),
        prefix: string('Prefix of the Redis keys.', { default: 'mcpgate:' }),
        timeout: duration('Time allowed for one Redis decision before `on_store_error` applies.', {
          default: '250ms',
          min: 1,
        }),
      },
      'Redis settings for `backend: redis`.',
      { optional: true, required: ['url'] },
    ),
    on_store_error: oneOf(['deny', 'allow'], 'What to do when the store cannot be reached.', {
      default: 'deny',
    }),
  },
  'Per-key token buckets.',
);

const auth = object(
  {
    session_secret: string(
      'Secret (32+ characters) that binds MCP sessions to the key that opened them. Share it across replicas; ' +
        'a random one is made at start when absent (sessions then do not survive a restart).',
      { check: (v) => (v.length >= 32 ? undefined : 'must be at least 32 characters') },
    ),
    allow_unauthenticated: boolean(
      'Run without authentication and without allowlists (for local trials only; every request is allowed, and none is rate limited: `rate_limit` meters keys and OAuth subjects, and there are none).',
      { default: false },
    ),
    oauth: oauthSpec(
      ownRateLimit(
        'each subject',
        'Limits for the tokens matching this grant, overriding `rate_limit` (each `iss` + `sub` has its own buckets for this grant, apart from those its tokens of other grants draw on).',
      ),
    ),
  },
  'Authentication settings.',
);

const policy = object(
  {
    unknown_methods: oneOf(['deny', 'allow'], 'Methods not in the method table.', { default: 'deny' }),
  },
  'How requests are judged.',
);

const pinning = object(
  {
    lockfile: string(
      'The lockfile written by `mcpgate pin` (a path, relative to the working directory). Setting it turns pinning on.',
    ),
    on_change: oneOf(
      ['hide', 'warn'],
      'A tool or prompt whose definition differs from its pin, or is not in the lockfile: `hide` removes it from every list and refuses calls to it; `warn` passes it (report only, for a first rollout).',
      { default: 'hide' },
    ),
  },
  'Tool-definition pinning: tools and prompts are listed only as the operator approved them.',
  { optional: true, required: ['lockfile'] },
);

const audit = object(
  {
    output: string('`stdout`, `stderr`, or a file path (reopened on SIGHUP).', { default: 'stdout' }),
    log_arguments: boolean('Add tool arguments to the audit line (redacted fields below).', {
      default: false,
    }),
    redact: array(
      string('A field name.'),
      'Argument fields whose name contains one of these (any case, ignoring `-` and `_`) are replaced by `[redacted]`, at any depth.',
      {
        default: [
          'password',
          'passwd',
          'token',
          'secret',
          'apikey',
          'authorization',
          'credential',
          'privatekey',
          'cookie',
        ],
      },
    ),
  },
  'The audit log: one JSON line per request.',
);

const metrics = object(
  {
    enabled: boolean('Serve Prometheus metrics at `/metrics`.', { default: true }),
    listen: string('Serve metrics on this separate `host:port` instead of the main listener.', {
      check: (v) => (parseListen(v) ? undefined : 'must be host:port'),
    }),
  },
  'Prometheus metrics.',
);

export const configSpec = object(
  {
    listen,
    public_url: publicUrl,
    server,
    cors,
    upstream,
    limits,
    streams,
    shutdown,
    auth,
    keys: array(keySpec, 'API keys.', { default: [] }),
    rate_limit: rateLimit,
    policy,
    pinning,
    audit,
    metrics,
  },
  'mcpgate configuration',
  { required: ['upstream'] },
);

type Out<S> = S extends Spec<infer T> ? T : never;
export type Config = Out<typeof configSpec>;
export type KeyConfig = Out<typeof keySpec>;
export type OAuthConfig = NonNullable<Config['auth']['oauth']>;
export type GrantConfig = OAuthConfig['grants'][number];

export function parseListen(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

/** Why a Redis URL is not one the client can use, without quoting it (it may hold a password). */
function redisUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'not a URL: expected redis://[user:password@]host[:port][/db] or rediss://...';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'expected a redis:// or rediss:// URL';
  if (url.hostname === '') return 'a redis:// URL needs a host (redis://host:6379/0)';
  if (!/^\/?\d*$/.test(url.pathname)) return 'the path of a redis:// URL is a database number (/0)';
  return undefined;
}

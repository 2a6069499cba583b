/** Config: YAML, interpolation, schema, and every problem reported at once with its path. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, formatIssue } from '../../../src/config/load.ts';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const HASH = 'a'.repeat(64);
const parse = (text: string, env: Record<string, string> = {}) => parseConfigText(text, env, NOW);
const errors = (text: string, env: Record<string, string> = {}) =>
  parse(text, env)
    .issues.filter((i) => i.severity === 'error')
    .map(formatIssue);

describe('config loading', () => {
  it('fills defaults and freezes the result', () => {
    const { config, issues } = parse(
      'upstream:\n  url: http://127.0.0.1:3000/mcp\nauth:\n  allow_unauthenticated: true\n',
    );
    assert.deepEqual(issues, []);
    assert.ok(config);
    assert.equal(config.listen, '127.0.0.1:8080');
    assert.equal(config.upstream.timeout, 30_000);
    assert.equal(config.limits.max_body_bytes, 4 * 1024 * 1024);
    assert.equal(config.streams.keepalive, 15_000);
    assert.equal(config.shutdown.grace, 10_000);
    assert.deepEqual(config.upstream.headers, {});
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.upstream) && Object.isFrozen(config.keys));
  });

  it('interpolates ${VAR} and ${VAR:-default} in values, never in structure', () => {
    const { config } = parse(
      [
        'listen: ${HOST:-127.0.0.1}:${PORT}',
        'upstream:',
        '  url: http://upstream/mcp',
        '  headers:',
        '    Authorization: Bearer ${UPSTREAM_TOKEN}',
        '    X-Literal: $${NOT_A_VAR}',
        'auth:',
        '  allow_unauthenticated: true',
      ].join('\n'),
      { PORT: '9000', UPSTREAM_TOKEN: 'tok}en: {injected: 1}' },
    );
    assert.ok(config);
    assert.equal(config.listen, '127.0.0.1:9000');
    assert.equal(config.upstream.headers.Authorization, 'Bearer tok}en: {injected: 1}');
    assert.equal(config.upstream.headers['X-Literal'], '${NOT_A_VAR}');
  });

  it('refuses a header value that a variable filled with a line break', () => {
    assert.deepEqual(
      errors(
        'upstream:\n  url: http://x/mcp\n  headers:\n    X-Token: ${T}\nauth:\n  allow_unauthenticated: true\n',
        { T: 'a\r\nX-Evil: 1' },
      ),
      ['upstream.headers.X-Token: must not contain control characters'],
    );
  });

  it('reports an unset variable with its path', () => {
    assert.deepEqual(errors('upstream:\n  url: ${UPSTREAM_URL}\n'), [
      'upstream.url: environment variable UPSTREAM_URL is not set',
    ]);
  });

  it('keeps public_url as written, and leaves it unset by default', () => {
    const base = 'upstream:\n  url: http://u/mcp\nauth:\n  allow_unauthenticated: true\n';
    assert.equal(parse(base).config?.public_url, undefined);
    assert.equal(
      parse(`public_url: https://mcp.example.com/mcp\n${base}`).config?.public_url,
      'https://mcp.example.com/mcp',
    );
  });

  it('warns about a forward_headers entry that is forwarded anyway', () => {
    const { config, issues } = parse(
      'upstream:\n  url: http://u/mcp\n  forward_headers: [Accept, X-Trace-Id]\nauth:\n  allow_unauthenticated: true\n',
    );
    assert.deepEqual(config?.upstream.forward_headers, ['Accept', 'X-Trace-Id']);
    assert.deepEqual(issues.map(formatIssue), [
      'warning: upstream.forward_headers[0]: Accept is forwarded anyway',
    ]);
  });

  it('parses durations and sizes', () => {
    const { config } = parse(
      'upstream:\n  url: http://u/mcp\n  timeout: 1.5s\nlimits:\n  max_body_bytes: 512KiB\nstreams:\n  keepalive: 2m\nauth:\n  allow_unauthenticated: true\n',
    );
    assert.equal(config?.upstream.timeout, 1500);
    assert.equal(config?.limits.max_body_bytes, 512 * 1024);
    assert.equal(config?.streams.keepalive, 120_000);
  });

  const BAD: [string, string, string[]][] = [
    ['missing upstream', 'listen: 127.0.0.1:1\n', ['upstream: is required']],
    ['upstream not http', 'upstream:\n  url: ftp://x/mcp\n', ['upstream.url: must be an http or https URL']],
    [
      'upstream relative',
      'upstream:\n  url: /mcp\n',
      ['upstream.url: must be an absolute http or https URL'],
    ],
    [
      'credentials in the upstream URL',
      'upstream:\n  url: http://user:pw@x/mcp\n',
      ['upstream.url: must not contain credentials (use upstream.headers)'],
    ],
    [
      'public_url relative',
      'public_url: /mcp\nupstream:\n  url: http://x/mcp\n',
      ['public_url: must be an absolute http or https URL'],
    ],
    [
      'public_url not http',
      'public_url: ws://gw/mcp\nupstream:\n  url: http://x/mcp\n',
      ['public_url: must be an http or https URL'],
    ],
    [
      'credentials in public_url',
      'public_url: https://u:p@gw/mcp\nupstream:\n  url: http://x/mcp\n',
      ['public_url: must not contain credentials'],
    ],
    [
      'fragment in public_url',
      'public_url: https://gw/mcp#x\nupstream:\n  url: http://x/mcp\n',
      ['public_url: must not contain a fragment'],
    ],
    [
      'forward_headers naming what must not cross',
      'upstream:\n  url: http://x/mcp\n  forward_headers: [Authorization, X-API-Key, Connection, X-Forwarded-For, Content-Type, X-HTTP-Method-Override, X-Original-URL, "bad name"]\n',
      [
        'upstream.forward_headers[0]: Authorization is a credential for the gateway: it never reaches the upstream',
        'upstream.forward_headers[1]: X-API-Key is a credential for the gateway: it never reaches the upstream',
        'upstream.forward_headers[2]: Connection is a hop-by-hop header: it never crosses the gateway',
        'upstream.forward_headers[3]: X-Forwarded-For is written by the gateway itself',
        'upstream.forward_headers[4]: Content-Type is written by the gateway itself',
        'upstream.forward_headers[5]: X-HTTP-Method-Override would let a client change the method or URL the gateway judged',
        'upstream.forward_headers[6]: X-Original-URL would let a client change the method or URL the gateway judged',
        'upstream.forward_headers[7]: is not a valid header name (not shown: it may hold a header value, such as a credential)',
      ],
    ],
    [
      'pass_headers naming what describes the upstream',
      'upstream:\n  url: http://x/mcp\n  pass_headers: [Location, WWW-Authenticate, Set-Cookie, Server, X-Powered-By, Access-Control-Allow-Origin, Transfer-Encoding, Content-Length, Mcp-Session-Id]\n',
      [
        'upstream.pass_headers[0]: Location describes the upstream (its URL, credentials, cookies, software or CORS policy): it never reaches the client',
        'upstream.pass_headers[1]: WWW-Authenticate describes the upstream (its URL, credentials, cookies, software or CORS policy): it never reaches the client',
        'upstream.pass_headers[2]: Set-Cookie describes the upstream (its URL, credentials, cookies, software or CORS policy): it never reaches the client',
        'upstream.pass_headers[3]: Server describes the upstream (its URL, credentials, cookies, software or CORS policy): it never reaches the client',
        'upstream.pass_headers[4]: X-Powered-By describes the upstream (its URL, credentials, cookies, software or CORS policy): it never reaches the client',
        'upstream.pass_headers[5]: Access-Control-Allow-Origin describes the upstream (its URL, credentials, cookies, software or CORS policy): it never reaches the client',
        'upstream.pass_headers[6]: Transfer-Encoding is a hop-by-hop header: it never crosses the gateway',
        'upstream.pass_headers[7]: Content-Length is written by the gateway itself',
        'upstream.pass_headers[8]: Mcp-Session-Id is written by the gateway itself',
      ],
    ],
    [
      'upstream.headers overriding the body or connection headers',
      'upstream:\n  url: http://x/mcp\n  headers:\n    Content-Length: "5"\n    Transfer-Encoding: chunked\n    Authorization: Bearer up\n',
      [
        'upstream.headers.Content-Length: is written by the gateway itself (it describes the forwarded body, session or upstream URL)',
        'upstream.headers.Transfer-Encoding: is a hop-by-hop header: it never crosses the gateway',
      ],
    ],
    [
      'bad allowed_hosts and allowed_origins',
      'upstream:\n  url: http://x/mcp\nserver:\n  allowed_hosts: ["mcp.example.com:443", "a b"]\ncors:\n  allowed_origins: ["https://app.example.com/path", "app.example.com", "*"]\n',
      [
        'server.allowed_hosts[0]: must be a host name or IP address without a port (e.g. mcp.example.com), or *',
        'server.allowed_hosts[1]: must be a host name or IP address without a port (e.g. mcp.example.com), or *',
        'cors.allowed_origins[0]: must be an http or https origin (scheme://host[:port], no path)',
        'cors.allowed_origins[1]: must be an http or https origin (scheme://host[:port], no path)',
        'cors.allowed_origins[2]: must be an http or https origin (scheme://host[:port], no path)',
      ],
    ],
    [
      'unknown top-level key',
      'upstream:\n  url: http://x/mcp\nlisten_on: 1\n',
      [
        'listen_on: unknown field (expected one of: listen, public_url, server, cors, upstream, limits, streams, shutdown, auth, keys, rate_limit, policy, pinning, audit, metrics)',
      ],
    ],
    [
      'unknown nested key',
      'upstream:\n  url: http://x/mcp\n  timout: 5s\n',
      [
        'upstream.timout: unknown field (expected one of: url, transport, timeout, call_timeout, tool_timeouts, headers, forward_headers, pass_headers, connections)',
      ],
    ],
    [
      'bad duration',
      'upstream:\n  url: http://x/mcp\n  timeout: soon\n',
      ['upstream.timeout: must be a duration such as 250ms, 30s, 5m or 1h'],
    ],
    [
      'bad size',
      'upstream:\n  url: http://x/mcp\nlimits:\n  max_body_bytes: lots\n',
      ['limits.max_body_bytes: must be a size such as 4MiB, 512KiB or a number of bytes'],
    ],
    [
      'bad listen',
      'listen: nowhere\nupstream:\n  url: http://x/mcp\n',
      ['listen: must be host:port with a port from 0 to 65535'],
    ],
    [
      'port out of range',
      'listen: 127.0.0.1:70000\nupstream:\n  url: http://x/mcp\n',
      ['listen: must be host:port with a port from 0 to 65535'],
    ],
    [
      'malformed key hash',
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: sha256:xyz\n`,
      [
        'keys[0].hash: not a sha256 hash (expected sha256:<64 lower-case hex> or 64 hex digits, as printed by `mcpgate keygen` or `mcpgate hash`)',
      ],
    ],
    [
      'duplicate labels and hashes',
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: "${HASH}"\n  - label: a\n    hash: "sha256:${HASH.toUpperCase()}"\n`,
      ['keys[1].label: duplicate label (also keys[0])', 'keys[1].hash: duplicate hash (also keys[0])'],
    ],
    [
      'key without label',
      `upstream:\n  url: http://x/mcp\nkeys:\n  - hash: "${HASH}"\n`,
      ['keys[0].label: is required'],
    ],
    [
      'unknown key field',
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: "${HASH}"\n    allowed: [x]\n`,
      [
        'keys[0].allowed: unknown field (expected one of: label, hash, allow, prompts, resources, roots, disabled, expires, rate_limit)',
      ],
    ],
    [
      'allow not a list',
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: "${HASH}"\n    allow: echo\n`,
      ['keys[0].allow: must be a list'],
    ],
    [
      'bad expiry',
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: "${HASH}"\n    expires: tomorrow\n`,
      ['keys[0].expires: not an ISO 8601 date or time (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)'],
    ],
    [
      'redis without url',
      'upstream:\n  url: http://x/mcp\nrate_limit:\n  backend: redis\n',
      ['rate_limit.redis.url: is required when backend is redis'],
    ],
    [
      'bad backend',
      'upstream:\n  url: http://x/mcp\nrate_limit:\n  backend: memcached\n',
      ['rate_limit.backend: must be one of: memory, redis'],
    ],
    [
      'negative capacity',
      'upstream:\n  url: http://x/mcp\nrate_limit:\n  capacity: -1\n',
      ['rate_limit.capacity: must be at least 1'],
    ],
    [
      'short session secret',
      'upstream:\n  url: http://x/mcp\nauth:\n  session_secret: short\n',
      ['auth.session_secret: must be at least 32 characters'],
    ],
    [
      'duplicate YAML key',
      'upstream:\n  url: http://x/mcp\n  url: http://y/mcp\n',
      ['line 3:3: Map keys must be unique'],
    ],
    ['not a mapping', '- a\n- b\n', ['(root): must be a mapping']],
  ];
  for (const [name, text, expected] of BAD) {
    it(`rejects ${name} with a path-qualified message`, () => {
      assert.deepEqual(errors(text), expected);
      assert.equal(parse(text).config, undefined);
    });
  }

  it('reports every problem at once', () => {
    const all = errors(
      'listen: x\nupstream:\n  url: ftp://x\n  timeout: never\nlimits:\n  max_body_bytes: -3\nbogus: 1\n',
    );
    assert.deepEqual(all, [
      'bogus: unknown field (expected one of: listen, public_url, server, cors, upstream, limits, streams, shutdown, auth, keys, rate_limit, policy, pinning, audit, metrics)',
      'listen: must be host:port with a port from 0 to 65535',
      'upstream.url: must be an http or https URL',
      'upstream.timeout: must be a duration such as 250ms, 30s, 5m or 1h',
      'limits.max_body_bytes: must be a size such as 4MiB, 512KiB or a number of bytes',
    ]);
  });

  it('warns when the MCP endpoint takes a path the gateway serves itself (health, metrics, discovery)', () => {
    const base = 'auth:\n  allow_unauthenticated: true\n';
    const warnings = (url: string) => parse(`upstream:\n  url: ${url}\n${base}`).issues.map(formatIssue);
    for (const path of ['/healthz', '/readyz', '/metrics', '/.well-known/oauth-protected-resource'])
      assert.deepEqual(warnings(`http://x${path}`), [
        `warning: upstream.url: its path ${path} is the MCP endpoint's, so the gateway's own ${path} is not served (health probes, metrics or OAuth discovery reach the upstream's MCP endpoint instead)`,
      ]);
    assert.deepEqual(warnings('http://x/metrics/mcp'), []);
    assert.deepEqual(warnings('http://x/mcp'), []);
  });

  it('warns when a key label is one metrics use for requests of no configured key', () => {
    const hash = `sha256:${'a'.repeat(64)}`;
    const config = (label: string) =>
      parse(`upstream:\n  url: http://x/mcp\nkeys:\n  - label: ${label}\n    hash: "${hash}"\n`).issues.map(
        formatIssue,
      );
    for (const label of ['oauth', 'anonymous', 'other', 'none'])
      assert.deepEqual(config(label), [
        `warning: keys[0].label: "${label}" is also what metrics call requests of no configured key: this key's are counted with them (choose another label)`,
      ]);
    assert.deepEqual(config('ci-bot'), []);
  });

  it('says which transport an upstream URL looks like when upstream.transport probably does not match', () => {
    const base = 'auth:\n  allow_unauthenticated: true\n';
    const warnings = (upstream: string) => parse(`upstream:\n${upstream}${base}`).issues.map(formatIssue);
    assert.deepEqual(warnings('  url: http://x/sse\n'), [
      'warning: upstream.url: looks like an HTTP+SSE (2024-11-05) stream URL: set upstream.transport: sse if the server speaks that transport',
    ]);
    assert.deepEqual(warnings('  url: http://x/mcp/\n  transport: sse\n'), [
      'warning: upstream.url: looks like a Streamable HTTP endpoint, but upstream.transport is sse (its SSE stream is usually /sse)',
    ]);
    assert.deepEqual(warnings('  url: http://x/sse\n  transport: sse\n'), []);
    assert.deepEqual(warnings('  url: http://x/mcp\n'), []);
    assert.deepEqual(warnings('  url: http://x/api/events\n  transport: sse\n'), []);
    assert.equal(
      parse(`upstream:\n  url: http://x/mcp\n${base}`).config?.upstream.transport,
      'streamable-http',
    );
    assert.deepEqual(
      parse(`upstream:\n  url: http://x/mcp\n  transport: websocket\n${base}`).issues.map(formatIssue),
      ['upstream.transport: must be one of: streamable-http, sse'],
    );
  });

  it('warns, without failing, about an expiry date in the past and about having no keys', () => {
    const { config, issues } = parse(
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: "${HASH}"\n    expires: 2026-01-01\n`,
    );
    assert.ok(config);
    assert.deepEqual(issues.map(formatIssue), [
      'warning: keys[0].expires: is in the past: this key is refused',
    ]);
    assert.deepEqual(parse('upstream:\n  url: http://x/mcp\n').issues.map(formatIssue), [
      'warning: keys: no keys configured: every request will be refused (run `mcpgate keygen`)',
    ]);
  });

  it('reports cross-field problems in the same run as schema errors', () => {
    // Schema errors (unknown field, bad duration, bad label) beside cross-field ones (duplicate
    // label and hash, expiry format, redis without url): all in one run, none hidden by another.
    assert.deepEqual(
      errors(
        [
          'upstream:',
          '  url: http://x/mcp',
          '  timeout: soon',
          'colour: blue',
          'rate_limit:',
          '  backend: redis',
          'keys:',
          `  - label: a`,
          `    hash: "${HASH}"`,
          `  - label: a`,
          `    hash: "sha256:${HASH}"`,
          '    expires: next week',
          '  - label: "bad label"',
          `    hash: "${'b'.repeat(64)}"`,
        ].join('\n'),
      )
        .map((line) => line.replace(/ \(expected one of: [^)]*\)$/, ''))
        .sort(),
      [
        'colour: unknown field',
        'keys[1].expires: not an ISO 8601 date or time (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)',
        'keys[1].hash: duplicate hash (also keys[0])',
        'keys[1].label: duplicate label (also keys[0])',
        'keys[2].label: must be 1-64 characters of A-Z a-z 0-9 . _ @ -',
        'rate_limit.redis.url: is required when backend is redis',
        'upstream.timeout: must be a duration such as 250ms, 30s, 5m or 1h',
      ],
    );
  });

  it('tells a key pasted as a hash, and a hash of the wrong length, what to do', () => {
    const key = 'mcpg_yMMo0UxL2HCkP9r45FBGGiJLwPqVeJCivl9h9cJdQC52TAodc';
    const out = errors(
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: "${key}"\n  - label: b\n    hash: "sha256:${HASH.slice(1)}"\n`,
    );
    assert.deepEqual(out, [
      'keys[0].hash: this is a key, not its hash: run `mcpgate hash` and paste what it prints (never put the key itself in the config)',
      'keys[1].hash: not a sha256 hash: 63 hex digits, expected 64 (sha256:<64 lower-case hex>, as printed by `mcpgate keygen` or `mcpgate hash`)',
    ]);
    assert.ok(!out.join('\n').includes(key), 'the key is never echoed');
  });
});

/**
 * Review of the operator's surface: reserved routes (/metrics, /healthz, /readyz), the listeners'
 * Host rule, the metrics, the CLI and the config. Each `failed before:` test shows an attack that
 * worked before its fix; `holds:` tests pin a defence that would be easy to lose.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey } from '../../src/auth/key-format.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { keyedConfig, startRawUpstream } from '../helpers/raw-http.ts';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { startAuthServer } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { BIN, runCli } from '../helpers/cli.ts';
import { spawn } from 'node:child_process';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request to `base` (the gateway's URL) with exactly these headers (Host included). */
function send(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  const u = new URL(base);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port: Number(u.port), method, path, headers, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.end(body);
  });
}

const PING = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });

function mcpHeaders(host: string, secret: string): Record<string, string> {
  return {
    host,
    authorization: `Bearer ${secret}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'content-length': String(PING.length),
  };
}

/**
 * A listener on loopback is guarded against DNS rebinding by the Host rule, "on a loopback
 * listener (127.0.0.0/8, ::1, localhost)". The rule was decided on the configured spelling of the
 * address, so `127.1`, `0x7f.0.0.1`, `2130706433` or `[0:0:0:0:0:0:0:1]` (which bind 127.0.0.1 and
 * ::1 exactly as the usual spellings do) turned it off: a page on a rebound name reached the
 * upstream with the victim's session and read /metrics, on the main listener and on metrics.listen.
 */
describe('the Host rule follows the address a listener binds, not its spelling', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: RawUpstream;
  before(async () => {
    upstream = await startRawUpstream();
  });
  after(async () => {
    await upstream?.close();
  });

  for (const spelling of ['127.1', '0x7f.0.0.1', '2130706433', '[0:0:0:0:0:0:0:1]', '[::ffff:127.0.0.1]']) {
    it(`failed before: a listener on ${spelling} served a rebound Host: the MCP endpoint and /metrics`, async () => {
      const metricsPort = await freePort();
      const gateway: TestGateway = await startTestGateway(
        keyedConfig(upstream.url, secret, {
          extra: { metrics: { listen: `${spelling}:${metricsPort}` } },
        }),
        {},
        { listen: `${spelling}:0` },
      );
      try {
        const posts = upstream.state.posts;
        const rebound = 'attacker.example';
        const mcp = await send(gateway.url, 'POST', '/mcp', mcpHeaders(rebound, secret), PING);
        assert.equal(mcp.status, 403, 'the MCP endpoint refuses a foreign Host');
        assert.equal((JSON.parse(mcp.body) as { error: { code: number } }).error.code, -32600);
        assert.equal(upstream.state.posts, posts, 'nothing reached the upstream');
        const line = gateway.auditLines.at(-1);
        assert.equal(line?.reason, 'ERR_HOST_DENIED');
        const metrics = await send(gateway.runtime.metricsUrl!, 'GET', '/metrics', { host: rebound });
        assert.equal(metrics.status, 403, 'metrics.listen refuses a foreign Host');
        assert.doesNotMatch(metrics.body, /mcpgate_/);
        // The loopback names are served as before.
        const own = await send(gateway.url, 'POST', '/mcp', mcpHeaders('localhost', secret), PING);
        assert.equal(own.status, 200);
        const scrape = await send(gateway.runtime.metricsUrl!, 'GET', '/metrics', { host: 'localhost' });
        assert.equal(scrape.status, 200);
      } finally {
        await gateway.close(100);
      }
    });
  }
});

/**
 * Node's timers hold a signed 32-bit count of milliseconds: a longer delay is run after 1 ms (with a
 * TimeoutOverflowWarning on stderr). The config took any duration, so `limits.send_timeout: 600h`
 * (meant as "practically never") cut every client whose socket filled for 1 ms (ERR_CLIENT_STALLED,
 * 4 MB of a 26 MB stream delivered), `limits.idle_reclaim: 600h` ran its idle check every 1 ms,
 * and a keepalive that long spun its wheel every few ms. Every duration is now refused above
 * 2^31-1 ms with its path, by `mcpgate validate` and on a reload alike.
 */
describe('durations a Node timer cannot hold', () => {
  const DURATIONS: [string, object][] = [
    ['limits.send_timeout', { limits: { send_timeout: '600h' } }],
    ['limits.idle_reclaim', { limits: { idle_reclaim: '600h' } }],
    ['streams.keepalive', { streams: { keepalive: '600h' } }],
    ['shutdown.grace', { shutdown: { grace: '600h' } }],
    ['upstream.timeout', { upstream: { url: 'http://127.0.0.1:1/mcp', timeout: '600h' } }],
    ['upstream.call_timeout', { upstream: { url: 'http://127.0.0.1:1/mcp', call_timeout: '600h' } }],
    [
      'upstream.tool_timeouts.build_*',
      { upstream: { url: 'http://127.0.0.1:1/mcp', tool_timeouts: { 'build_*': '600h' } } },
    ],
    [
      'rate_limit.redis.timeout',
      { rate_limit: { backend: 'redis', redis: { url: 'redis://127.0.0.1:1/0', timeout: '600h' } } },
    ],
  ];

  it('failed before: a duration over 2^31-1 ms (600h) is refused with its path, 596h is taken', () => {
    for (const [path, section] of DURATIONS) {
      const config = { upstream: { url: 'http://127.0.0.1:1/mcp' }, ...section };
      const { config: parsed, issues } = parseConfigText(JSON.stringify(config), {}, Date.now());
      assert.equal(parsed, undefined, `${path}: refused`);
      const issue = issues.find((i) => i.path === path);
      assert.ok(issue, `${path}: reported at its path (${issues.map((i) => i.path).join(', ')})`);
      assert.match(issue.message, /at most 2147483647ms/);
      const fits = JSON.stringify(config).replace('600h', '596h');
      assert.ok(parseConfigText(fits, {}, Date.now()).config, `${path}: 596h is taken`);
    }
  });

  it('failed before: `mcpgate validate` refuses MCPGATE_LIMITS_SEND_TIMEOUT=600h and names the variable', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'mcpgate-durations-'));
    const result = await runCli(['validate'], {
      cwd,
      env: {
        MCPGATE_UPSTREAM_URL: 'http://127.0.0.1:1/mcp',
        MCPGATE_LIMITS_SEND_TIMEOUT: '600h',
      },
    });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /limits\.send_timeout: must be at most .*\(from MCPGATE_LIMITS_SEND_TIMEOUT\)/,
    );
  });
});

/**
 * Some of the YAML library's messages quote the text they point at: `Block scalar header includes
 * extra characters: |<it>`, `Could not resolve tag: !<it>`, `Invalid escape sequence \x<it>`. A
 * secret written unquoted that starts with `|`, `>` or `!` (a generated password may), or a
 * double-quoted one holding a backslash, was printed whole by `mcpgate validate` and `serve`, and
 * logged at error level by a refused reload (the same loader), as the `*` of an alias was before.
 */
describe('YAML errors that quote a secret', () => {
  const SECRET = 'Zq9vR3kLm8TnW2xY5bC7dF1gH4jK6pS0';
  const VALUES = [
    `|${SECRET}`,
    `>${SECRET}`,
    `>-${SECRET}`,
    `!${SECRET}!x y`,
    `"${SECRET.slice(0, 8)}\\xY5${SECRET}"`,
  ];

  /** Any six characters of the secret in a row. */
  function quotes(text: string): boolean {
    for (let i = 0; i + 6 <= SECRET.length; i++) if (text.includes(SECRET.slice(i, i + 6))) return true;
    return false;
  }

  it('failed before: validate says where each one is and quotes none of it', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'mcpgate-yaml-'));
    for (const [i, value] of VALUES.entries()) {
      for (const at of [
        'auth:\n  session_secret',
        'upstream:\n  url: http://127.0.0.1:1/mcp\n  headers:\n    x-api-key',
      ]) {
        const file = join(cwd, `c${i}.yaml`);
        const head = at.startsWith('auth') ? 'upstream:\n  url: http://127.0.0.1:1/mcp\n' : '';
        writeFileSync(file, `${head}${at}: ${value}\n`);
        const run = await runCli(['validate', '--config', file], { cwd });
        assert.equal(run.code, 1, `${value}: refused`);
        assert.match(run.stderr, /^line \d+:\d+: /m, `${value}: the line is named`);
        assert.ok(!quotes(run.stdout + run.stderr), `${value} quoted: ${run.stderr}`);
      }
    }
  });

  it('holds: messages that quote nothing keep their words', () => {
    const text = 'upstream:\n  url: http://127.0.0.1:1/mcp\nupstream:\n  url: x\n';
    const { issues } = parseConfigText(text, {}, Date.now());
    assert.match(issues[0]?.message ?? '', /Map keys must be unique/);
  });
});

/**
 * Held: the reserved routes answer their exact paths only, and the Host rule comes before the
 * method: no spelling of /metrics gives a rebound page the metrics, and no answer (reserved route or
 * MCP endpoint, preflight or not) reflects a foreign Origin or allows credentials.
 */
describe('holds: /metrics spellings, methods and Origins', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: RawUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(
      keyedConfig(upstream.url, secret, {
        extra: { cors: { allowed_origins: ['https://app.example.com'] } },
      }),
    );
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it('holds: no path, method or Host spelling reads /metrics from a rebound name; no Origin is reflected', async () => {
    const paths = [
      '/metrics',
      '/metrics/',
      '//metrics',
      '/metrics;x',
      '/%6Detrics',
      '/METRICS',
      '/./metrics',
      '/mcp/../metrics',
      '/metrics%00',
      '/metrics?x=1',
    ];
    for (const path of paths) {
      for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST']) {
        const answer = await send(gateway.url, method, path, {
          host: 'attacker.example',
          origin: 'https://attacker.example',
        });
        assert.ok([403, 404].includes(answer.status), `${method} ${path}: ${answer.status}`);
        assert.doesNotMatch(answer.body, /mcpgate_/, `${method} ${path}`);
        assert.equal(answer.headers['access-control-allow-origin'], undefined, `${method} ${path}`);
      }
    }
    const own = await send(gateway.url, 'GET', '/metrics', {
      host: 'localhost',
      origin: 'https://app.example.com',
    });
    assert.equal(own.status, 200);
    assert.equal(own.headers['access-control-allow-origin'], undefined, 'metrics are not offered to pages');
    const preflight = await send(gateway.url, 'OPTIONS', '/mcp', {
      host: 'localhost',
      origin: 'https://app.example.com',
      'access-control-request-method': 'POST',
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(preflight.headers['access-control-allow-credentials'], undefined);
    const foreign = await send(gateway.url, 'OPTIONS', '/mcp', {
      host: 'localhost',
      origin: 'https://attacker.example',
      'access-control-request-method': 'POST',
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers['access-control-allow-origin'], undefined);
    assert.equal(upstream.seen.length, 0, 'nothing reached the upstream');
  });
});

/**
 * `mcpgate_tool_calls_total{tool}` names "a name written in an allowlist, else other". The label set
 * was built from the keys' `allow` lists only: behind OAuth (keys: []) every call was `other`, even
 * to a tool a grant's `allow` names exactly, and so was every pin violation. Grants' exact names are
 * now labels too (wildcards still are not, and a name no allowlist spells still is `other`).
 */
describe('metric labels behind OAuth', () => {
  let as: TestAuthServer;
  let upstream: RawUpstream;
  let gateway: TestGateway;
  before(async () => {
    as = await startAuthServer();
    upstream = await startRawUpstream();
    const port = await freePort();
    gateway = await startTestGateway(
      JSON.stringify({
        listen: `127.0.0.1:${port}`,
        public_url: `http://127.0.0.1:${port}/mcp`,
        upstream: { url: upstream.url },
        auth: {
          session_secret: 'x'.repeat(40),
          oauth: {
            issuer: as.issuer,
            grants: [{ name: 'tools', when: { scope: 'mcp:tools' }, allow: ['search', 'db_*'] }],
          },
        },
      }),
      {},
      { listen: `127.0.0.1:${port}` },
    );
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
    await as?.close();
  });

  it("failed before: a call to a tool a grant's allowlist spells is counted under its name", async () => {
    const token = await as.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools', sub: 'alice' });
    for (const [id, name] of [
      [1, 'search'],
      [2, 'db_read'],
      [3, 'not_listed'],
    ] as const) {
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name, arguments: {} },
      });
      const headers = {
        ...mcpHeaders('localhost', token),
        'content-length': String(Buffer.byteLength(body)),
      };
      await send(gateway.url, 'POST', '/mcp', headers, body);
    }
    await waitFor(() => gateway.finished.length >= 3 || undefined, 5000, 'three calls');
    const text = (await send(gateway.runtime.metricsUrl!, 'GET', '/metrics', { host: 'localhost' })).body;
    const series = text.split('\n').filter((l) => l.startsWith('mcpgate_tool_calls_total{'));
    assert.ok(
      series.some((l) => l.includes('tool="search",decision="allow"')),
      series.join('\n'),
    );
    assert.ok(
      series.some((l) => l.includes('tool="other",decision="allow"')),
      'db_read: a wildcard is no label',
    );
    assert.ok(
      series.some((l) => l.includes('tool="other",decision="deny"')),
      'not_listed',
    );
    assert.ok(!text.includes('db_read') && !text.includes('not_listed'));
  });
});

/**
 * `mcpgate health` (the image's HEALTHCHECK) passed `--timeout` to undici as is, which reads 0 as
 * "no timeout": `--timeout 0` against a gateway that accepted the connection and never answered
 * waited forever, and `--timeout abc` said "unhealthy: invalid headersTimeout" as if the gateway
 * were at fault. A timeout that is not a whole number of ms above 0 is now a usage error, and the
 * timeout bounds connecting too.
 */
describe('mcpgate health --timeout', () => {
  /** Exit code, stderr and time taken, or `hung` after `limitMs` (the child is then killed). */
  function health(args: string[], limitMs: number) {
    return new Promise<{ code: number | null; stderr: string; ms: number; hung: boolean }>((resolve) => {
      const t0 = Date.now();
      const child = spawn(process.execPath, [BIN, 'health', ...args], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        const ms = Date.now() - t0;
        resolve({ code, stderr, ms, hung: ms >= limitMs });
      });
    });
  }

  it('failed before: `--timeout 0` against a gateway that never answers exits at once with a usage error, not never', async () => {
    const silent = createTcpServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/healthz`;
    try {
      for (const timeout of ['0', 'abc', '1e3', '-5']) {
        const run = await health(['--url', url, '--timeout', timeout], 6000);
        assert.equal(run.hung, false, `--timeout ${timeout}: hung`);
        assert.equal(run.code, 1, `--timeout ${timeout}`);
        assert.match(run.stderr, /^health: --timeout must be a whole number of milliseconds above 0\n$/);
      }
      const bounded = await health(['--url', url, '--timeout', '300'], 6000);
      assert.equal(bounded.code, 1);
      assert.match(bounded.stderr, /^unhealthy: /);
    } finally {
      silent.close();
    }
  });
});

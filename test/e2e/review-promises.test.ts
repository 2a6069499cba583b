/**
 * Review from the README's side: each promise the README makes a user, checked against the running
 * gateway. `hole:` tests show a promise the gateway did not keep (and fail without its fix);
 * `holds:` tests pin a promise that held but that nothing tested, where losing it would matter.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey } from '../../src/auth/key-format.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { parseExpiry } from '../../src/config/checks.ts';
import type { Config } from '../../src/config/schema.ts';
import { lockfileOf, serializeLockfile } from '../../src/pinning/lockfile.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { keyedConfig, raw, startRawUpstream } from '../helpers/raw-http.ts';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';

const SECRET = mintKey(randomBytes(32));

function configOf(yaml: string): Config {
  const { config, issues } = parseConfigText(yaml, {}, Date.now());
  assert.ok(config, JSON.stringify(issues));
  return config;
}

/**
 * README, Reloading the config: `pinning` is applied at once ("the lockfile is read again; with the
 * HTTP+SSE upstream transport it needs a restart"), and a setting that needs a restart "keeps its
 * running value and is logged: changed, but applies only after a restart". With
 * `upstream.transport: sse` the pinning is built once with the stream matcher, so a reload that
 * changed it (`on_change: warn` -> `hide`, another lockfile) kept the old pinning, yet the reload
 * reported nothing needing a restart and said `config reloaded`, and the config it reported running
 * named the new pinning: an operator switching from the report-only rollout to `hide` was told it
 * applied while changed and unknown tools kept being listed and called.
 */
describe('a reload with the HTTP+SSE upstream transport and pinning', () => {
  let dir: string;
  let g: TestGateway;
  const yaml = (onChange: string, lockfile: string) =>
    keyedConfig('http://127.0.0.1:9/sse', SECRET, {
      extra: {
        upstream: { url: 'http://127.0.0.1:9/sse', transport: 'sse' },
        pinning: { lockfile, on_change: onChange },
      },
    });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcpgate-promises-'));
    const lock = serializeLockfile(
      lockfileOf({ tools: [{ name: 'search', inputSchema: { type: 'object' } }], prompts: [] }),
    );
    writeFileSync(join(dir, 'a.json'), lock);
    writeFileSync(join(dir, 'b.json'), lock);
    g = await startTestGateway(yaml('warn', join(dir, 'a.json')));
  });
  after(async () => {
    await g.close(100);
    rmSync(dir, { recursive: true, force: true });
  });

  it('hole: a changed pinning is reported as needing a restart, failed before: "config reloaded", nothing to restart', async () => {
    const outcome = await g.runtime.reload(configOf(yaml('hide', join(dir, 'b.json'))));
    assert.equal(outcome.applied, true);
    assert.deepEqual(outcome.restart.filter((p) => p.startsWith('pinning')).sort(), [
      'pinning.lockfile',
      'pinning.on_change',
    ]);
    // The running config says what runs: the pinning read at start.
    assert.equal(g.currentConfig().pinning?.on_change, 'warn');
    assert.equal(g.currentConfig().pinning?.lockfile, join(dir, 'a.json'));
  });

  it('hole: a lockfile written again since start is reported as needing a restart, failed before: "config reloaded" alone', async () => {
    const same = configOf(yaml('warn', join(dir, 'a.json')));
    assert.deepEqual((await g.runtime.reload(same)).restart, [], 'nothing changed, nothing reported');
    // `mcpgate pin` run again: the file now pins another definition.
    const repinned = lockfileOf({
      tools: [{ name: 'search', description: 'new', inputSchema: { type: 'object' } }],
      prompts: [],
    });
    writeFileSync(join(dir, 'a.json'), serializeLockfile(repinned));
    const outcome = await g.runtime.reload(same);
    assert.equal(outcome.applied, true);
    assert.deepEqual(outcome.restart, ['pinning.lockfile']);
  });
});

/**
 * README, Audit log: `bytes_out` is present "always": "response bytes sent" (the body's, as every
 * line counts it). A request Node's parser refuses (a malformed request line or header: 400;
 * headers over 16 KiB: 431) is answered with a JSON-RPC error body, yet its line said
 * `bytes_out: 0`, as if nothing had gone out: a log reader telling sent answers from ones that never
 * left (499, aborted) by their bytes read these as unsent.
 */
describe('the line of a request the HTTP parser refuses', () => {
  let upstream: RawUpstream;
  let g: TestGateway;
  before(async () => {
    upstream = await startRawUpstream();
    g = await startTestGateway(keyedConfig(upstream.url, SECRET));
  });
  after(async () => {
    await g.close(100);
    await upstream.close();
  });

  it('hole: its bytes_out is the answer it was sent, failed before: 0', async () => {
    const port = Number(new URL(g.url).port);
    for (const [head, status] of [
      ['GARBAGE\r\n\r\n', 400],
      [`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ] as const) {
      const before = g.auditLines.length;
      const { text } = await raw(port, head, 2000);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.match(body, /^\{"jsonrpc":"2\.0","id":null,"error":\{"code":-32600,/);
      const lines = g.auditLines.slice(before);
      assert.equal(lines.length, 1);
      assert.equal(lines[0]!.status, status);
      assert.equal(lines[0]!.aborted, false);
      assert.equal(lines[0]!.bytes_out, Buffer.byteLength(body));
    }
  });

  /**
   * README, Audit log: `request_id` is "returned in X-Request-Id". Every answer carries the id of its
   * line (a 401, a 405, the router's 400 for an absolute-form target, CONNECT's 400), but the parser's
   * own refusals (400, 431) went out without it: a client reporting one could not be matched to it.
   */
  it('hole: its answer carries the request id of its line, failed before: no X-Request-Id', async () => {
    const port = Number(new URL(g.url).port);
    for (const head of [
      'GARBAGE\r\n\r\n',
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ${'a'.repeat(20_000)}\r\n\r\n`,
    ]) {
      const before = g.auditLines.length;
      const { text } = await raw(port, head, 2000);
      const lines = g.auditLines.slice(before);
      assert.equal(lines.length, 1);
      const id = /\r\nX-Request-Id: ([^\r]+)\r\n/i.exec(text.slice(0, text.indexOf('\r\n\r\n') + 2))?.[1];
      assert.equal(id, lines[0]!.request_id);
    }
  });
});

/**
 * README, Rate limiting: "a key may keep at most `max_streams` (default 10) streams open at once
 * (429 beyond)", and the HTTP+SSE transport's POSTs are "authenticated, read, judged and rate
 * limited exactly like a Streamable HTTP POST". Its GET streams hold an upstream connection each,
 * outside `upstream.connections`: without the cap one key could open them without bound.
 */
describe('the HTTP+SSE transport and max_streams', () => {
  let upstream: RawSseUpstream;
  let g: TestGateway;
  const open: IncomingMessage[] = [];
  before(async () => {
    upstream = await startRawSseUpstream((origin) => `${origin}/legacy/messages?sessionId=s1`);
    g = await startTestGateway(
      keyedConfig(upstream.url, SECRET, {
        extra: { upstream: { url: upstream.url, transport: 'sse' } },
        key: { rate_limit: { max_streams: 1 } },
      }),
    );
  });
  after(async () => {
    for (const res of open) res.destroy();
    await g.close(100);
    await upstream.close();
  });

  function get(): Promise<{ status: number; res: IncomingMessage; first: string }> {
    const { port } = new URL(g.url);
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: Number(port),
        path: new URL(upstream.url).pathname,
        headers: {
          host: `127.0.0.1:${port}`,
          authorization: `Bearer ${SECRET}`,
          accept: 'text/event-stream',
        },
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        open.push(res);
        res.once('data', (d: Buffer) => resolve({ status: res.statusCode ?? 0, res, first: d.toString() }));
      });
      req.end();
    });
  }

  it('holds: a second stream of a key with max_streams 1 gets 429 and never reaches the upstream', async () => {
    const first = await get();
    assert.equal(first.status, 200);
    assert.match(first.first, /^event: endpoint\ndata: \/legacy\/sse\?session=/);
    const second = await get();
    assert.equal(second.status, 429);
    assert.equal(
      second.first,
      '{"jsonrpc":"2.0","id":null,"error":{"code":-32029,"message":"too many open streams for this key"}}',
    );
    assert.equal(upstream.streams.length, 1);
    await waitFor(() => g.auditLines.find((l) => l.status === 429), 2000, "the refusal's line");
    assert.equal(g.auditLines.find((l) => l.status === 429)!.reason, 'ERR_TOO_MANY_STREAMS');
  });
});

/**
 * README, Configuration reference: "Durations: `250ms`, `30s`, `5m`, `1h`", and "a typo in a
 * security config must not silently disable a rule". A duration written without its unit was read
 * as milliseconds: `shutdown.grace: 30` (meant as 30 s) cut every call in flight 30 ms into a
 * rollout, `auth.oauth.clock_tolerance: 300` allowed 0.3 s of skew, `MCPGATE_UPSTREAM_CALL_TIMEOUT=600`
 * gave tool calls 0.6 s; `validate` said ok. The same number quoted (`'30'`) was refused.
 */
describe('a duration without its unit', () => {
  it('hole: is refused with its path, failed before: read as milliseconds, validate ok', async () => {
    for (const [yaml, path] of [
      ['shutdown: { grace: 30 }', 'shutdown.grace'],
      ['upstream: { url: "http://127.0.0.1:9/mcp", call_timeout: 600 }', 'upstream.call_timeout'],
      [
        'upstream: { url: "http://127.0.0.1:9/mcp", tool_timeouts: { build: 3600 } }',
        'upstream.tool_timeouts.build',
      ],
      ['limits: { idle_reclaim: 0 }', 'limits.idle_reclaim'],
    ] as const) {
      const text = `${yaml.startsWith('upstream') ? '' : 'upstream: { url: "http://127.0.0.1:9/mcp" }\n'}${yaml}\n`;
      const { config, issues } = parseConfigText(text, {}, Date.now());
      assert.equal(config, undefined, yaml);
      assert.deepEqual(
        issues.filter((i) => i.severity === 'error').map((i) => `${i.path}: ${i.message}`),
        [`${path}: must be a duration such as 250ms, 30s, 5m or 1h`],
      );
    }
    // From the environment alone, as a sidecar is configured: the variable is named.
    const cwd = mkdtempSync(join(tmpdir(), 'mcpgate-promises-env-'));
    try {
      const { code, stderr } = await runCli(['validate'], {
        cwd,
        env: {
          MCPGATE_UPSTREAM_URL: 'http://127.0.0.1:9/mcp',
          MCPGATE_SHUTDOWN_GRACE: '30',
          MCPGATE_KEYS: '[]',
        },
      });
      assert.equal(code, 1);
      assert.match(
        stderr,
        /^shutdown\.grace: must be a duration such as 250ms, 30s, 5m or 1h \(from MCPGATE_SHUTDOWN_GRACE\)$/m,
      );
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('holds: every spelling the README shows, 0s included', () => {
    const text =
      'upstream: { url: "http://127.0.0.1:9/mcp", timeout: 250ms, call_timeout: 5m, tool_timeouts: { build: 1h } }\n' +
      'shutdown: { grace: 30s }\nlimits: { idle_reclaim: 0s }\n';
    const { config, issues } = parseConfigText(text, {}, Date.now());
    assert.ok(config, JSON.stringify(issues));
    assert.equal(config.upstream.timeout, 250);
    assert.equal(config.upstream.call_timeout, 300_000);
    assert.equal(config.upstream.tool_timeouts.build, 3_600_000);
    assert.equal(config.shutdown.grace, 30_000);
    assert.equal(config.limits.idle_reclaim, 0);
  });
});

/**
 * README, Configuration reference: `keys[].expires` is an "Expiry date or time (ISO 8601); refused
 * after it". A day its month does not have was taken: Date.parse rolls `2026-04-31` over to May 1
 * (and `2027-02-29` to March 1), so a key meant to end with April worked a day longer, and validate
 * said ok.
 */
describe('a key expiry on a day its month does not have', () => {
  const key = (expires: string) =>
    `upstream: { url: "http://127.0.0.1:9/mcp" }\nkeys:\n  - { label: a, hash: "${'a'.repeat(64)}", expires: "${expires}" }\n`;

  it('hole: is refused with its path, failed before: rolled over into the next month', () => {
    for (const expires of ['2026-04-31', '2027-02-29', '2026-06-31T12:00:00Z']) {
      const { config, issues } = parseConfigText(key(expires), {}, Date.parse('2026-01-01T00:00:00Z'));
      assert.equal(config, undefined, expires);
      assert.deepEqual(
        issues.filter((i) => i.severity === 'error').map((i) => i.path),
        ['keys[0].expires'],
        expires,
      );
    }
  });

  it('holds: a date ends with its day (UTC), a leap day included', () => {
    const { config, issues } = parseConfigText(key('2028-02-29'), {}, Date.parse('2026-01-01T00:00:00Z'));
    assert.ok(config, JSON.stringify(issues));
    assert.equal(parseExpiry('2028-02-29'), Date.parse('2028-03-01T00:00:00Z'));
    assert.equal(parseExpiry('2026-04-30T18:00:00Z'), Date.parse('2026-04-30T18:00:00Z'));
  });
});

/**
 * README, Tool-definition pinning: `mcpgate pin` "prints the change against the previous lockfile"
 * (`+ tool export_csv`, `~ tool search: description, inputSchema`), for the operator to review; its
 * threat is a compromised upstream, and "the first approval: `mcpgate pin` trusts what the upstream
 * says when you run it. Read the diff." The names it printed were the upstream's, raw: a tool named
 * with a line break forged lines of the summary, and one holding terminal escapes (ESC [1A ESC [2K:
 * up a line, erase it) erased the line that announced it, so the operator read less than was pinned.
 * The gateway's own log escapes control characters "so a logged value cannot drive the terminal".
 */
describe('mcpgate pin and the names the upstream chose', () => {
  const tools = [
    { name: 'search', inputSchema: { type: 'object' } },
    { name: 'exfiltrate\x1b[1A\x1b[2K', inputSchema: { type: 'object' } },
    { name: 'x\n  - tool search', inputSchema: { type: 'object' } },
    { name: 'rtl\u202etxt.exe\u2028', inputSchema: { type: 'object' }, ['\x1b]0;title\x07']: 1 },
  ];
  let dir: string;
  let url = '';
  let failWith: string | undefined;
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const m = JSON.parse(text) as { id?: number; method: string };
      if (m.id === undefined) return void res.writeHead(202).end();
      if (failWith !== undefined && m.method === 'tools/list') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(
          JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32603, message: failWith } }),
        );
      }
      const result =
        m.method === 'initialize'
          ? {
              protocolVersion: '2025-06-18',
              capabilities: { tools: {} },
              serverInfo: { name: 's', version: '1' },
            }
          : { tools };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
    });
  });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mcpgate-promises-pin-'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('hole: every name is printed on its own line, escaped, failed before: raw (forged lines, terminal escapes)', async () => {
    const lock = join(dir, 'lock.json');
    const config = join(dir, 'mcpgate.yaml');
    writeFileSync(config, `upstream:\n  url: ${url}\npinning:\n  lockfile: ${lock}\nkeys: []\n`);
    // A previous lockfile pinning `search` alone, so the others are announced as added.
    writeFileSync(lock, serializeLockfile(lockfileOf({ tools: [tools[0]!], prompts: [] })));
    const { code, stdout, stderr } = await runCli(['pin', '--config', config]);
    assert.equal(code, 0, stderr);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
    const lines = stdout.split('\n').filter((l) => l !== '');
    assert.equal(lines[0], `${lock}: 3 added, 0 changed, 0 removed (4 tool(s), 0 prompt(s))`);
    assert.deepEqual(lines.slice(1, 4).sort(), [
      '  + tool "exfiltrate\\u001b[1A\\u001b[2K"',
      '  + tool "rtl\\u202etxt.exe\\u2028"',
      '  + tool "x\\n  - tool search"',
    ]);
    assert.match(lines[4]!, /^wrote /);
    assert.equal(lines.length, 5);
  });

  it('hole: an upstream error it quotes is one line, escaped, failed before: raw', async () => {
    const config = join(dir, 'mcpgate.yaml');
    writeFileSync(
      config,
      `upstream:\n  url: ${url}\npinning:\n  lockfile: ${join(dir, 'x.json')}\nkeys: []\n`,
    );
    failWith = 'boom\x1b[2J\nmcpgate pin: wrote x.json \u202e';
    try {
      const { code, stderr } = await runCli(['pin', '--config', config]);
      assert.equal(code, 1);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(stderr, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]/);
      assert.equal(
        stderr.split('\n').find((l) => l.startsWith('mcpgate pin:')) + '\n',
        'mcpgate pin: tools/list: upstream error -32603 boom\\u001b[2J\\u000amcpgate pin: wrote x.json \\u202e\n',
      );
    } finally {
      failWith = undefined;
    }
  });
});

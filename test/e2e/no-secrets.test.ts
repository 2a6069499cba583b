/**
 * Issue 6, security regression: no key, token or secret ever reaches anything the gateway writes.
 *
 * A real `mcpgate serve` process runs at `--log-level trace` with `audit.log_arguments: true`, an
 * upstream credential from `${UPSTREAM_TOKEN}` and a session secret in its config. Keys are sent
 * every way a client might send them (valid, wrong, one character changed, in X-API-Key, in
 * Authorization with odd scheme spellings, in the query string, in cookies, beside a proxy
 * credential), along with a `password` argument. Then every byte the gateway wrote (stdout, stderr,
 * the audit file) is searched for every secret, and for any 16-character piece of one.
 *
 * Also searched for: the full SHA-256 of each key. The audit line's `key_id` is 8 hex digits of it
 * by design (enough to tell keys apart, useless to search a leaked hash list); the whole hash is a
 * stable identifier of the credential and has no business in a log.
 *
 * The control: the `note` argument, sent beside `password`, must be in the audit file (arguments are
 * logged, the redacted one is not), and there must be exactly one audit line per request.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { runCli, startServe } from '../helpers/cli.ts';
import type { ServeProcess } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';
import { rawHttp } from '../helpers/net.ts';

const PROTOCOL = '2025-06-18';
const hex = (n: number) => randomBytes(n).toString('hex');
const newKey = () => mintKey(randomBytes(32));

/** Every secret, by what it is (the name shows in a failure; the value never does). */
const SECRETS = {
  writerKey: newKey(),
  readerKey: newKey(),
  wrongKey: newKey(),
  wrongApiKey: newKey(),
  opaque: `sk-live-${hex(20)}`,
  jwt: `eyJhbGciOiJIUzI1NiJ9.${randomBytes(48).toString('base64url')}.${randomBytes(32).toString('base64url')}`,
  basicPassword: `basic-pw-${hex(12)}`,
  cookie: `cookie-${hex(16)}`,
  queryToken: `qtok-${hex(16)}`,
  proxySecret: `proxy-${hex(16)}`,
  customHeader: `custom-${hex(16)}`,
  password: `pw-${hex(16)}`,
  deniedPassword: `pw-denied-${hex(16)}`,
  batchPassword: `pw-batch-${hex(16)}`,
  unauthenticatedPassword: `pw-anon-${hex(16)}`,
  nestedApiKey: `nested-${hex(16)}`,
  nestedToken: `nested-tok-${hex(16)}`,
  bodySecret: `body-${hex(16)}`,
  forgedMac: randomBytes(16).toString('base64url'),
  huge: hex(2500),
  upstreamToken: `upt-${hex(20)}`,
  sessionSecret: `session-secret-${hex(24)}`,
  shortSecret: `short-${hex(6)}`,
};
/** A key with one character of its random part changed (fails its checksum). */
const ONE_OFF = (() => {
  const k = SECRETS.writerKey;
  const c = k[20] as string;
  return k.slice(0, 20) + (c === 'a' ? 'b' : 'a') + k.slice(21);
})();
const NOTES = {
  note: `note-${hex(12)}`,
  deniedNote: `note-denied-${hex(12)}`,
  batchNote: `note-batch-${hex(12)}`,
};

const hash = (secret: string) => sha256Hex(secret);

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

const raw = (url: string, method: string, headers: string[], body?: string) =>
  rawHttp(url, method, ['User-Agent', 'no-secrets-e2e', ...headers], body);

const rpc = (id: number | string, method: string, params?: unknown) =>
  JSON.stringify(
    params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params },
  );
const toolCall = (id: number | string, name: string, args: Record<string, unknown>) =>
  rpc(id, 'tools/call', { name, arguments: args });
const initialize = (id: number) =>
  rpc(id, 'initialize', {
    protocolVersion: PROTOCOL,
    capabilities: {},
    clientInfo: { name: 'no-secrets', version: '1' },
  });

/** Fails with the secret's name (never its value) when `haystack` holds it or a 16-character piece of it. */
function assertAbsent(haystack: string, where: string, secrets: Readonly<Record<string, string>>): void {
  const WINDOW = 16;
  for (const [name, secret] of Object.entries(secrets)) {
    assert.ok(!haystack.includes(secret), `${where} contains the secret ${name}`);
    const step = secret.length > 256 ? WINDOW : 1;
    for (let i = 0; i + WINDOW <= secret.length; i += step) {
      assert.ok(
        !haystack.includes(secret.slice(i, i + WINDOW)),
        `${where} contains a piece of the secret ${name} (at ${i})`,
      );
    }
  }
}

describe('no secret reaches stdout, stderr or the audit file (real mcpgate serve, --log-level trace)', () => {
  let upstream: SdkUpstream;
  let dir: string;
  let auditPath: string;
  let gw: ServeProcess;
  /** Requests made to the MCP endpoint: each must have exactly one audit line. */
  let made = 0;
  /** Every answer the clients received (minus the session ids the gateway issues by design). */
  const answers: string[] = [];
  /** Client-facing session ids and the upstream's own ids: bearer-like, never logged either. */
  const sessions: Record<string, string> = {};

  before(async () => {
    upstream = await startSdkUpstream();
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-no-secrets-'));
    auditPath = join(dir, 'audit.log');
    // YAML, so `${UPSTREAM_TOKEN}` is interpolated by the gateway from its environment.
    const config = [
      'listen: 127.0.0.1:0',
      'upstream:',
      `  url: ${upstream.url}`,
      '  headers:',
      '    authorization: "Bearer ${UPSTREAM_TOKEN}"',
      'auth:',
      `  session_secret: "${SECRETS.sessionSecret}"`,
      'rate_limit:',
      '  capacity: 1000',
      '  refill_per_second: 1000',
      'audit:',
      `  output: ${auditPath}`,
      '  log_arguments: true',
      'keys:',
      '  - label: writer',
      `    hash: "sha256:${hash(SECRETS.writerKey)}"`,
      '    allow: ["*"]',
      '  - label: reader',
      `    hash: "${hash(SECRETS.readerKey)}"`,
      '    allow: ["echo"]',
      '',
    ].join('\n');
    const configPath = join(dir, 'mcpgate.yaml');
    await writeFile(configPath, config);
    gw = await startServe(['--config', configPath, '--log-level', 'trace'], {
      UPSTREAM_TOKEN: SECRETS.upstreamToken,
    });
  });

  after(async () => {
    await gw?.stop('SIGKILL');
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const json = ['Content-Type', 'application/json', 'Accept', 'application/json, text/event-stream'];
  const withVersion = [...json, 'MCP-Protocol-Version', PROTOCOL];

  async function send(
    method: string,
    headers: string[],
    body: string | undefined,
    status: number,
    path = '',
  ): Promise<Answer> {
    made++;
    const answer = await raw(gw.url + path, method, headers, body);
    const { 'mcp-session-id': _issued, ...rest } = answer.headers;
    answers.push(`${answer.status} ${JSON.stringify(rest)}\n${answer.body}`);
    assert.equal(
      answer.status,
      status,
      `${method} ${body?.slice(0, 60) ?? ''}: ${answer.body.slice(0, 200)}`,
    );
    return answer;
  }

  it('valid keys, every way they may be sent, with secret arguments', async () => {
    const writer = SECRETS.writerKey;
    const init = await send('POST', [...json, 'Authorization', `Bearer ${writer}`], initialize(1), 200);
    const sid = init.headers['mcp-session-id'];
    assert.equal(typeof sid, 'string');
    sessions.writer = sid as string;
    sessions.writerUpstream = (sid as string).slice(0, (sid as string).lastIndexOf('.'));
    const session = ['Mcp-Session-Id', sessions.writer];
    await send(
      'POST',
      [...withVersion, 'Authorization', `Bearer ${writer}`, ...session],
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      202,
    );

    // Lower-case scheme, cookies holding secrets, arguments with a password and a nested apiKey/token.
    const echoed = await send(
      'POST',
      [
        ...withVersion,
        'authorization',
        `bearer ${writer}`,
        ...session,
        'Cookie',
        `sid=${SECRETS.cookie}; mcpgate_key=${writer}`,
      ],
      // Numbers a double cannot spell back, deep in the arguments: logged as the client wrote them.
      toolCall(2, 'echo', {
        message: 'hello',
        password: SECRETS.password,
        note: NOTES.note,
        nested: { apiKey: SECRETS.nestedApiKey, items: [{ token: SECRETS.nestedToken }] },
      }).replace('"message":"hello"', '"message":"hello","sizes":[1.0,{"n":1e400}]'),
      200,
    );
    assert.match(echoed.body, /Echo: hello/);
    // Upper-case scheme with several spaces; a proxy credential and a custom secret header beside it.
    await send(
      'POST',
      [
        ...withVersion,
        'AUTHORIZATION',
        `BEARER   ${writer}`,
        ...session,
        'Proxy-Authorization',
        `Bearer ${SECRETS.proxySecret}`,
        'X-Custom-Secret',
        SECRETS.customHeader,
      ],
      rpc(3, 'tools/list'),
      200,
    );
    // The reader key in X-API-Key, in its own session; a denied call with a password argument.
    const readerInit = await send('POST', [...json, 'X-API-Key', SECRETS.readerKey], initialize(4), 200);
    sessions.reader = readerInit.headers['mcp-session-id'] as string;
    assert.ok(sessions.reader);
    await send(
      'POST',
      [...withVersion, 'x-api-key', SECRETS.readerKey, 'Mcp-Session-Id', sessions.reader],
      toolCall(5, 'secret_admin', { password: SECRETS.deniedPassword, note: NOTES.deniedNote }),
      200,
    );
    // A batch whose call carries a password.
    await send(
      'POST',
      [...withVersion, 'Authorization', `Bearer ${writer}`, ...session],
      JSON.stringify([
        {
          jsonrpc: '2.0',
          id: 6,
          method: 'tools/call',
          params: { name: 'echo', arguments: { password: SECRETS.batchPassword, note: NOTES.batchNote } },
        },
        { jsonrpc: '2.0', id: 7, method: 'ping' },
      ]),
      200,
    );
  });

  it('refused credentials: wrong, changed, foreign, other schemes, in the query, duplicated', async () => {
    const body = rpc(10, 'tools/list');
    const refused = (headers: string[], path = '') => send('POST', [...json, ...headers], body, 401, path);
    await refused(['Authorization', `Bearer ${SECRETS.wrongKey}`]);
    await refused(['X-API-Key', SECRETS.wrongApiKey]);
    await refused(['Authorization', `Bearer ${ONE_OFF}`]);
    await refused(['Authorization', `Bearer ${SECRETS.writerKey.slice(0, -1)}`]);
    await refused(['Authorization', `Bearer ${SECRETS.opaque}`]);
    await refused(['Authorization', `Bearer ${SECRETS.jwt}`]);
    await refused(['Authorization', `Token ${SECRETS.writerKey}`]);
    await refused([
      'Authorization',
      `Basic ${Buffer.from(`admin:${SECRETS.basicPassword}`).toString('base64')}`,
    ]);
    await refused(['Authorization', `Bearer ${SECRETS.huge}`]);
    await refused(['X-API-Key', SECRETS.huge]);
    await refused(['Authorization', `Bearer ${SECRETS.writerKey}`], `?api_key=${SECRETS.writerKey}`);
    await refused([], `?token=${SECRETS.queryToken}`);
    await refused([], `?x=1&access_token=${SECRETS.readerKey}`);
    await refused(['Authorization', `Bearer ${SECRETS.writerKey}`, 'X-API-Key', SECRETS.readerKey]);
    await refused([
      'Authorization',
      `Bearer ${SECRETS.writerKey}`,
      'Authorization',
      `Bearer ${SECRETS.wrongKey}`,
    ]);
    await refused(['Cookie', `mcpgate_key=${SECRETS.writerKey}; token=${SECRETS.cookie}`]);
    // A body with a password, without a key: never parsed, never logged.
    await send('POST', json, toolCall(11, 'echo', { password: SECRETS.unauthenticatedPassword }), 401);
  });

  it('sessions: stolen, forged; a bad body with a secret; the GET stream and DELETE', async () => {
    const writer = ['Authorization', `Bearer ${SECRETS.writerKey}`];
    // The writer's session presented with the reader's key, and a forged MAC.
    await send(
      'POST',
      [...withVersion, 'X-API-Key', SECRETS.readerKey, 'Mcp-Session-Id', sessions.writer as string],
      rpc(20, 'ping'),
      404,
    );
    await send(
      'POST',
      [
        ...withVersion,
        ...writer,
        'Mcp-Session-Id',
        `${sessions.writerUpstream as string}.${SECRETS.forgedMac}`,
      ],
      rpc(21, 'ping'),
      404,
    );
    // Not JSON, with a secret in it.
    await send('POST', [...withVersion, ...writer], `{"password":"${SECRETS.bodySecret}",`, 400);
    // The GET stream: opened, then left.
    made++;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(gw.url, {
        method: 'GET',
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${SECRETS.writerKey}`,
          'mcp-session-id': sessions.writer as string,
          'mcp-protocol-version': PROTOCOL,
        },
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        assert.equal(res.statusCode, 200);
        res.on('error', () => {});
        req.destroy();
        resolve();
      });
      req.end();
    });
    await send(
      'DELETE',
      [...writer, 'MCP-Protocol-Version', PROTOCOL, 'Mcp-Session-Id', sessions.writer as string],
      undefined,
      200,
    );
    // Reserved routes with a key: answered, not audited, not logged.
    for (const path of ['/healthz', '/metrics']) {
      const res = await raw(new URL(path, gw.url).href, 'GET', writer);
      assert.equal(res.status, 200, path);
    }
  });

  it('wrote no secret anywhere, and did log the arguments that are not secret', async () => {
    // Every request has its line before the process is stopped (so a lost line cannot hide a leak).
    await waitFor(
      async () =>
        (await readFile(auditPath, 'utf8')).split('\n').filter(Boolean).length >= made ? true : undefined,
      5000,
      'every audit line',
    );
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited(), 0);
    const audit = await readFile(auditPath, 'utf8');
    const stdout = gw.stdout();
    const stderr = gw.stderr();

    // The control: the run produced what it should have.
    const records = audit
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(records.length, made, 'one audit line per request');
    assert.ok(records.some((r) => r.key === 'writer' && r.key_id === hash(SECRETS.writerKey).slice(0, 8)));
    assert.ok(records.some((r) => r.key === 'reader' && r.key_id === hash(SECRETS.readerKey).slice(0, 8)));
    const echo = records.find((r) => r.rpc_id === 2);
    assert.deepEqual(echo?.arguments, {
      message: 'hello',
      password: '[redacted]',
      note: NOTES.note,
      nested: { apiKey: '[redacted]', items: [{ token: '[redacted]' }] },
      sizes: ['1.0', { n: '1e400' }],
    });
    for (const note of Object.values(NOTES))
      assert.ok(audit.includes(note), 'logged arguments reach the audit file');
    assert.ok(
      records.some((r) => r.session !== undefined),
      'sessions are tagged',
    );
    assert.match(stderr, /mcpgate listening on/);
    // The upstream got its own credential from the environment, and never a client's.
    const posts = upstream.received.filter((r) => r.method === 'POST');
    assert.ok(posts.length > 0);
    for (const r of upstream.received) {
      assert.equal(r.headers.authorization, `Bearer ${SECRETS.upstreamToken}`);
      assertAbsent(JSON.stringify(r.headers), 'a header the upstream received', {
        writerKey: SECRETS.writerKey,
        readerKey: SECRETS.readerKey,
        cookie: SECRETS.cookie,
        proxySecret: SECRETS.proxySecret,
      });
    }

    const everything: Record<string, string> = {
      ...SECRETS,
      oneOff: ONE_OFF,
      writerSession: sessions.writer as string,
      writerUpstreamSession: sessions.writerUpstream as string,
      readerSession: sessions.reader as string,
      writerHash: hash(SECRETS.writerKey),
      readerHash: hash(SECRETS.readerKey),
      wrongHash: hash(SECRETS.wrongKey),
      basicHeader: Buffer.from(`admin:${SECRETS.basicPassword}`).toString('base64'),
    };
    assertAbsent(audit, 'the audit file', everything);
    assertAbsent(stdout, 'stdout', everything);
    assertAbsent(stderr, 'stderr', everything);
    const { writerSession: _w, writerUpstreamSession: _u, readerSession: _r, ...notSessions } = everything;
    assertAbsent(answers.join('\n'), 'the answers to the clients', notSessions);
  });

  it('a config that fails validation does not echo the secrets in it', async () => {
    const env = { MISPLACED_KEY: SECRETS.writerKey };
    const EXPECTED_ERROR: Record<string, RegExp> = {
      schema: /upstream\.url: must not contain credentials[^]*control characters[^]*at least 32 characters/,
      pasted: /keys\[0\]\.hash: this is a key, not its hash: run `mcpgate hash`/,
      typo: /auth\.sesion_secret: unknown field/,
      yaml: /Missing closing "quote/,
    };
    const cases: Record<string, string> = {
      // Schema errors: credentials in the URL, a control character in a header, a short session secret.
      schema: [
        'upstream:',
        `  url: http://admin:${SECRETS.basicPassword}@127.0.0.1:1/mcp`,
        '  headers:',
        `    authorization: "Bearer ${SECRETS.upstreamToken}\\u0001"`,
        'auth:',
        `  session_secret: "${SECRETS.shortSecret}"`,
        '',
      ].join('\n'),
      // The key itself pasted (from the environment) where its hash goes.
      pasted: [
        'upstream:',
        '  url: http://127.0.0.1:1/mcp',
        'keys:',
        '  - label: pasted',
        '    hash: "${MISPLACED_KEY}"',
        '',
      ].join('\n'),
      // A misspelt field holding a secret.
      typo: [
        'upstream:',
        '  url: http://127.0.0.1:1/mcp',
        'auth:',
        `  sesion_secret: "${SECRETS.sessionSecret}"`,
        '',
      ].join('\n'),
      // Broken YAML on the line of a secret.
      yaml: [
        'upstream:',
        '  url: http://127.0.0.1:1/mcp',
        '  headers:',
        `    authorization: "Bearer ${SECRETS.opaque}`,
        '  timeout: [',
        '',
      ].join('\n'),
    };
    for (const [name, text] of Object.entries(cases)) {
      const path = join(dir, `bad-${name}.yaml`);
      await writeFile(path, text);
      const { code, stdout, stderr } = await runCli(['serve', '--config', path, '--log-level', 'trace'], {
        env,
      });
      assert.equal(code, 1, `${name}: not started`);
      assert.match(stderr, /not started/, name);
      assert.match(stderr, EXPECTED_ERROR[name] as RegExp, `${name}: refused for the intended reason`);
      assertAbsent(stdout + stderr, `the output for the ${name} config`, {
        basicPassword: SECRETS.basicPassword,
        upstreamToken: SECRETS.upstreamToken,
        shortSecret: SECRETS.shortSecret,
        writerKey: SECRETS.writerKey,
        sessionSecret: SECRETS.sessionSecret,
        opaque: SECRETS.opaque,
      });
    }
  });
});

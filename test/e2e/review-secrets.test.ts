/**
 * Attack review "secrets": secrets that leave the process. Tests named "hole: ..." failed on the
 * code reviewed (each says how: "failed before: ..."); "holds: ..." tests guard a defence that held.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { legacyClients } from '../helpers/legacy-session.ts';
import { runCli } from '../helpers/cli.ts';
import { mintKey } from '../../src/auth/key-format.ts';

const hex = (n: number) => randomBytes(n).toString('hex');

/** Every text hidden in `text`: itself, and what each run of base64url characters in it decodes to. */
function readings(text: string): string[] {
  const out = [text];
  for (const run of text.match(/[A-Za-z0-9_-]{8,}/g) ?? []) {
    // Every offset: a run may start mid-way through what was encoded.
    for (let i = 0; i < 4; i++) out.push(Buffer.from(run.slice(i), 'base64url').toString('latin1'));
  }
  return out;
}

describe('the HTTP+SSE endpoint handed to clients (README: "The client never learns the upstream\'s address")', () => {
  const KEY = newKey();
  /** A credential the upstream put in its own endpoint (a server that authenticates POSTs by query). */
  const UPSTREAM_TOKEN = `uptok${hex(12)}`;
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  const opened: OpenedStream[] = [];
  let sid = 0;
  before(async () => {
    upstream = await startRawSseUpstream(
      () => `/legacy/messages?sid=S${++sid}-${hex(8)}&token=${UPSTREAM_TOKEN}`,
    );
    gateway = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'alice', key: KEY }], '  transport: sse\n', {
        secret: hex(24),
        resources: [],
      }),
    );
  });
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });
  after(async () => {
    await gateway?.close(200);
    await upstream?.close();
  });
  const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);

  it("hole: the session parameter carried the upstream's endpoint (and a token in its query) readable by the client", async () => {
    const a = await open(KEY);
    // failed before: the session was base64url(upstream path and query) + nonce + MAC, signed but
    // not sealed: any client decoded `/legacy/messages?sid=S1-...&token=<the upstream's token>`.
    for (const reading of readings(a.session)) {
      assert.ok(!reading.includes(UPSTREAM_TOKEN), "the client can read the upstream's token");
      assert.ok(!reading.includes('/legacy/messages'), "the client can read the upstream's endpoint");
    }
    // The POST still goes where the upstream said, token included.
    await forwarded(KEY, a.endpoint, { jsonrpc: '2.0', id: 1, method: 'ping' });
    const path = upstream.posts.at(-1)!.path;
    assert.match(path, new RegExp(`^/legacy/messages\\?sid=S\\d+-[0-9a-f]+&token=${UPSTREAM_TOKEN}$`));
  });

  it('holds: a session handed to one client is refused with another key, and a tampered one is refused', async () => {
    const a = await open(KEY);
    const other = newKey();
    const res = await fetch(a.endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${other}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    assert.equal(res.status, 401);
    await res.text();
    const url = new URL(a.endpoint);
    const session = url.searchParams.get('session')!;
    const flipped = session.slice(0, 5) + (session[5] === 'A' ? 'B' : 'A') + session.slice(6);
    url.searchParams.set('session', flipped);
    const posts = upstream.posts.length;
    const tampered = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    assert.equal(tampered.status, 404);
    await tampered.text();
    assert.equal(upstream.posts.length, posts, 'nothing reached the upstream');
  });
});

describe('command-line mistakes (brief: never echo a key or token, in any CLI output)', () => {
  it('hole: commander quoted a secret given as an unknown option value or as a word', async () => {
    const key = mintKey(randomBytes(32));
    const secret = `s3cr3t${hex(16)}`;
    const runs: [string[], RegExp][] = [
      [['serve', `--key=${key}`], /unknown option '--key=/],
      [['serve', `--session-secret=${secret}`], /unknown option '--session-secret=/],
      [['keygen', '--label', 'a', `--token=${secret}`], /unknown option '--token=/],
      [[key], /unknown command/],
      [[`sk-live-${secret}`], /unknown command/],
    ];
    for (const [args, said] of runs) {
      const { code, stdout, stderr } = await runCli(args);
      assert.equal(code, 1, args[0]);
      assert.match(stderr, said);
      // failed before: "error: unknown option '--key=mcpg_...'", "error: unknown command 'mcpg_...'"
      for (const s of [key, secret, key.slice(5, 25), secret.slice(6)])
        assert.ok(!(stdout + stderr).includes(s), `${said.source}: the secret is echoed`);
    }
  });

  it("holds: commander's own words and a mistyped command are still shown", async () => {
    const typo = await runCli(['serv']);
    assert.match(typo.stderr, /unknown command 'serv'[^]*Did you mean serve\?/);
    const missing = await runCli(['keygen', '--label']);
    assert.match(missing.stderr, /option '--label <name>' argument missing/);
    const unknown = await runCli(['serve', '--bogus']);
    assert.match(unknown.stderr, /unknown option '--bogus'/);
  });
});

describe('a header line written where a header name goes (brief: a token in the wrong field is never echoed)', () => {
  it('hole: validate quoted the whole line, credential included, of forward_headers, pass_headers and headers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcpgate-review-secrets-'));
    try {
      const forward = `fwd${hex(12)}`;
      const pass = `pass${hex(12)}`;
      const fixed = `hdr${hex(12)}`;
      const path = join(dir, 'mcpgate.yaml');
      await writeFile(
        path,
        [
          'listen: 127.0.0.1:0',
          'upstream:',
          '  url: http://127.0.0.1:9/mcp',
          `  forward_headers: ["Authorization: Bearer ${forward}"]`,
          `  pass_headers: ["X-Upstream-Token: ${pass}"]`,
          '  headers:',
          `    "Authorization: Bearer ${fixed}": ""`,
          'auth:',
          `  session_secret: "${hex(24)}"`,
          '',
        ].join('\n'),
      );
      const { code, stdout, stderr } = await runCli(['validate', '--config', path]);
      assert.equal(code, 1, 'refused');
      assert.match(stderr, /upstream\.forward_headers\[0\]: is not a valid header name/);
      assert.match(stderr, /upstream\.pass_headers\[0\]: is not a valid header name/);
      assert.match(stderr, /upstream\.headers: entry 1: is not a valid header name/);
      // failed before: "upstream.forward_headers[0]: Authorization: Bearer fwd... is not a valid header name"
      for (const secret of [forward, pass, fixed])
        assert.ok(!(stdout + stderr).includes(secret), 'a credential is echoed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Attack review "review19": the newest code (`git diff 2181d77..main -- src`): a refused client
 * answer's id, the parser failure handler's pipelined request, the CLI's hidden arguments, the
 * exact `Mcp-Param`/`Mcp-Name` comparisons, and the HTTP+SSE transport's open POSTs at shutdown.
 * "hole:" tests failed before their fix; "holds:" tests pin what already held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { openSocket } from '../helpers/raw-http.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import {
  startRawUpstream,
  raw,
  statuses,
  short,
  keyedConfig,
  clientHeaders,
  pingPost,
} from '../helpers/raw-http.ts';
import { mintKey } from '../../src/auth/key-format.ts';
import { randomBytes } from 'node:crypto';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { openStream } from '../helpers/sse-stream.ts';
import { runCli } from '../helpers/cli.ts';

/** A JWK set whose answers the test can hold back (an authorization server slow to answer). */
async function startJwks() {
  const keys: { kid: string; privateKey: CryptoKey; jwk: JWK }[] = [];
  let held: (() => void)[] | undefined;
  let fetches = 0;
  const server: Server = createServer((_req, res) => {
    fetches++;
    const answer = () =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
    if (held === undefined) answer();
    else held.push(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer: `${origin}/issuer`,
    jwksUri: `${origin}/jwks`,
    get fetches() {
      return fetches;
    },
    async addKey(kid: string) {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      keys.push({ kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } });
    },
    async sign(kid: string, audience: string) {
      const key = keys.find((k) => k.kid === kid)!;
      return new SignJWT({ scope: 'mcp:all' })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(`${origin}/issuer`)
        .setSubject('alice')
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(key.privateKey);
    },
    hold() {
      held = [];
    },
    release() {
      const waiting = held ?? [];
      held = undefined;
      for (const answer of waiting) answer();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('review19: HTTP+SSE, a POST whose client left while its token was verified', () => {
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let port: number;
  let publicUrl: string;

  before(async () => {
    jwks = await startJwks();
    await jwks.addKey('k1');
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=S1');
    port = await freePort();
    publicUrl = `http://127.0.0.1:${port}/legacy/sse`;
    const yaml = [
      `listen: 127.0.0.1:${port}`,
      `public_url: ${publicUrl}`,
      'upstream:',
      `  url: ${upstream.url}`,
      '  transport: sse',
      'auth:',
      '  session_secret: "0123456789abcdef0123456789abcdef-review19"',
      '  oauth:',
      `    issuer: ${jwks.issuer}`,
      `    jwks_uri: ${jwks.jwksUri}`,
      '    grants:',
      '      - name: all',
      '        when: { scope: mcp:all }',
      '        allow: [echo]',
    ].join('\n');
    gateway = await startTestGateway(
      yaml,
      {},
      { listen: `127.0.0.1:${port}`, oauthTuning: { cooldownMs: 0 } },
    );
  });
  after(async () => {
    jwks.release();
    await upstream.close();
    await jwks.close();
  });

  it('holds: a POST whose client left while its token was verified is not counted by its stream: the shutdown does not hold the stream for the grace', async () => {
    const stream = await openStream(gateway.mcpUrl, await jwks.sign('k1', publicUrl));
    const first = await stream.next();
    assert.equal(first.event, 'endpoint');
    const endpoint = new URL(first.data, gateway.url);
    // A token of a key the gateway has not fetched yet (rotated in): its verification waits for the
    // JWK set, held back, and the client leaves meanwhile.
    await jwks.addKey('k2');
    const token = await jwks.sign('k2', publicUrl);
    jwks.hold();
    const before = jwks.fetches;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } });
    const client = await openSocket(port);
    client.socket.write(
      `POST ${endpoint.pathname}${endpoint.search} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        `Authorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitFor(() => jwks.fetches > before, 3000, 'the JWK set fetch');
    client.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    jwks.release();
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.http_method === 'POST'),
      3000,
      'the POST line',
    );
    // Settled before the transport's post() counted it (pipeline/handler.ts closedBeforeTurn after
    // authentication): a 'close' listener added after the close would never run, and the stream
    // would count an open POST for ever.
    assert.equal(line.status, 499);
    assert.equal(line.reason, 'ERR_CLIENT_ABORTED');
    assert.equal(upstream.posts.length, 0);
    const started = Date.now();
    await gateway.close(3000);
    const took = Date.now() - started;
    stream.close();
    assert.ok(took < 1500, `the shutdown took ${took} ms`);
  });
});

describe("review19: Mcp-* headers on a client's answer to the upstream's request", () => {
  const alice = newKey();
  let upstream: RawUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'alice', key: alice, allow: ['echo'] }], '', {
        secret: 'r'.repeat(40),
        resources: [],
      }),
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it("hole: failed before: a header refusal of a client's answer carried the server request's id, which the client reads as its own request's", async () => {
    // 4c10159 answers a refused client answer (a result to the upstream's sampling request 3) with
    // id null, never the upstream's id: SDK peers both number from 0, so an error with id 3 reads
    // as the failure of the client's own request 3. The Mcp-* header checks (policy/headers.ts)
    // took the message's id whatever it was: failed before with id 3 for each of these.
    const seen = upstream.seen.length;
    for (const header of [
      { 'mcp-method': 'tools/call' },
      { 'mcp-name': 'echo' },
      { 'mcp-param-region': 'eu' },
    ]) {
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${alice}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...header,
        },
        body: '{"jsonrpc":"2.0","id":3,"result":{}}',
      });
      assert.equal(res.status, 400, JSON.stringify(header));
      const body = (await res.json()) as { id: unknown; error: { code: number } };
      assert.equal(body.error.code, -32020, JSON.stringify(header));
      assert.equal(body.id, null, JSON.stringify(header));
    }
    assert.equal(upstream.seen.length, seen, 'nothing forwarded');
    // A request's header refusal still carries its id.
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${alice}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-method': 'tools/list',
      },
      body: '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{}}}',
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { id: unknown }).id, 4);
    const line = gateway.auditLines.findLast((l) => l.http_method === 'POST')!;
    assert.equal(line.reason, 'ERR_HEADER_MISMATCH');
  });
});

describe('review19: the CLI hiding refused arguments (src/cli/output.ts)', () => {
  /**
   * c0d7189 hides, from the first quoted text that is not the program's own words, up to the line's
   * last quote. But it read the argument's own quotes and lines as the message's: an argument whose
   * piece before its first quote looks like a command word (`ab'mcpg_...`) made that piece a quoted
   * word of the program's, shown, and the rest after it; an argument holding a line break split the
   * quoted text over two lines, each with one quote, so neither was read as quoted: shown whole.
   */
  it('hole: failed before: a refused argument holding a quote after a word, or a line break, was echoed whole', async () => {
    const secret = `mcpg_${'S3cr'.repeat(12)}x`;
    const runs: [string[], RegExp][] = [
      [[`ab'${secret}`], /unknown command '\[not shown: it may be a secret\]'\n/],
      [['serve', `--token=abc\n${secret}`], /unknown option '--token=\[not shown: it may be a secret\]'\n/],
      [['serve', `-xab\r\n${secret}`], /unknown option '-x\[not shown: it may be a secret\]'\n/],
      [['keygen', '--label', 'a', `it's ${secret}`], /too many arguments for 'keygen'/],
    ];
    for (const [args, said] of runs) {
      const { code, stdout, stderr } = await runCli(args);
      assert.equal(code, 1, JSON.stringify(args));
      assert.match(stderr, said, JSON.stringify(args));
      // failed before: "unknown command 'ab'mcpg_S3cr...'", "unknown option '--token=abc\nmcpg_S3cr...'"
      assert.ok(!(stdout + stderr).includes('S3cr'), `${JSON.stringify(args)}: the secret is echoed`);
    }
    // The program's own words are still shown.
    assert.match((await runCli(['seve'])).stderr, /unknown command 'seve'\n\(Did you mean serve\?\)/);
  });
});

describe('review19: a malformed request head pipelined behind a call still answered (src/server/client-error.ts)', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: RawUpstream;
  let gateway: TestGateway;
  let port: number;
  let good: string;
  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(keyedConfig(upstream.url, secret));
    port = Number(new URL(gateway.url).port);
    good = clientHeaders(port, secret);
  });
  after(async () => {
    await gateway.close(100);
    await upstream.close();
  });

  /**
   * ae63077 answers a malformed body pipelined behind a call in order, after the call's answer. A
   * malformed head (a header line without a colon, a request line that is none, two
   * Content-Lengths) behind it still destroyed the connection: the call was cut before it reached
   * the upstream (or, arriving later, lost the answer the upstream gave), the client got no answer
   * at all, and two false lines were written: 400 for an answer never sent, and 499 for the call.
   */
  it("hole: failed before: the call and the refusal were both lost to a reset, and the refusal's line said 400", async () => {
    const tails = [
      'GET /mcp HTTP/1.1\r\nBad Header\r\n\r\n',
      'GARBAGE\r\n\r\n',
      `POST /mcp HTTP/1.1\r\n${good}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`,
    ];
    for (const [i, tail] of tails.entries()) {
      const from = gateway.auditLines.length;
      const seen = upstream.seen.length;
      const r = await raw(port, pingPost(good, i, 200, `q${i}`) + tail, 3000);
      // failed before: [] (a reset), the call never forwarded
      assert.deepEqual(statuses(r.text), [200, 400], JSON.stringify(tail));
      assert.match(r.text, new RegExp(`\\{"jsonrpc":"2\\.0","id":${i},"result":\\{\\}\\}HTTP/1\\.1 400 `));
      assert.match(
        r.text,
        /"id":null,"error":\{"code":-32600,"message":"invalid request: malformed HTTP request"\}\}$/,
      );
      assert.equal(r.closed, true);
      assert.equal(upstream.seen.length - seen, 1, 'the call, and nothing of the refused bytes');
      await waitFor(() => (gateway.auditLines.length - from >= 2 ? true : undefined));
      const lines = gateway.auditLines.slice(from).map(short);
      assert.equal(lines.length, 2, lines.join('\n'));
      assert.equal(lines[0], `q${i} POST 200 allow`);
      assert.match(lines[1]!, / undefined 400 invalid$/);
    }
  });

  it('hole: failed before (the call was never forwarded): a client that leaves before the call is answered gets no refusal written, and both lines say 499', async () => {
    const from = gateway.auditLines.length;
    const client = await openSocket(port);
    client.socket.write(pingPost(good, 9, 300, 'q9') + 'GARBAGE\r\n\r\n');
    await waitFor(() => (upstream.seen.length > 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 50));
    client.socket.destroy();
    await waitFor(() => (gateway.auditLines.length - from >= 2 ? true : undefined));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(
      gateway.auditLines
        .slice(from)
        .map(short)
        .map((l) => l.replace(/^\S+ undefined/, 'x undefined'))
        .sort(),
      ['q9 POST 499 allow aborted', 'x undefined 499 invalid aborted'],
    );
  });
});

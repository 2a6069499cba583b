/**
 * Issue 11, request direction: the envelope of the body and the request-header allowlist. The
 * upstream is built the way the MCP TypeScript SDK documents for Express (`express.json()` honours
 * `charset` and `Content-Encoding`), watched through a recording forwarder, so each test checks both
 * what the client got and exactly what the upstream was sent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startExpressUpstream } from '../helpers/express-upstream.ts';
import type { ExpressUpstream } from '../helpers/express-upstream.ts';
import { startRecorder } from '../helpers/recorder.ts';
import type { Recorded, Recorder } from '../helpers/recorder.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { rawHttp, waitFor } from '../helpers/net.ts';
import type { RawAnswer } from '../helpers/net.ts';

const KEY = mintKey(randomBytes(32));

const config = (upstreamUrl: string, options: { top?: string; upstream?: string } = {}) => `
listen: 127.0.0.1:0
${options.top ?? ''}
upstream:
  url: ${upstreamUrl}
${options.upstream ?? ''}
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [echo]
`;

const call = (id: number, name: string, message: string) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: { message } },
  });

/**
 * A tools/call of the allowed `echo` whose message, read as UTF-7, closes the string and the
 * arguments and adds a second `"name": "secret_admin"` to params (the last key wins in JSON.parse).
 */
function utf7Smuggle(id: number): string {
  const injected = '"},"name":"secret_admin","x":{"y":"';
  const base64 = Buffer.from(injected, 'utf16le').swap16().toString('base64').replace(/=+$/, '');
  return call(id, 'echo', `a+${base64}-`);
}

const BASE = ['Accept', 'application/json, text/event-stream', 'MCP-Protocol-Version', '2025-06-18'];

function post(url: string, headers: string[], body: string | Buffer, key = KEY): Promise<RawAnswer> {
  return rawHttp(
    url,
    'POST',
    [...BASE, 'Authorization', `Bearer ${key}`, ...headers],
    body as string /* rawHttp passes it to req.end as is */,
  );
}

function auditLine(gateway: TestGateway, answer: RawAnswer): Promise<Record<string, unknown>> {
  const id = answer.headers['x-request-id'];
  assert.equal(typeof id, 'string');
  return waitFor(() => gateway.auditLines.find((l) => l.request_id === id), 2000, 'the audit line');
}

describe('request envelope: the headers that describe the body are the gateway’s', () => {
  let upstream: ExpressUpstream;
  let recorder: Recorder;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startExpressUpstream();
    recorder = await startRecorder(upstream.url);
    gateway = await startTestGateway(config(recorder.url));
  });
  after(async () => {
    await gateway.close(1000);
    await recorder.close();
    await upstream.close();
  });

  it('charset attack: a UTF-7 body that express.json() reads as a denied tools/call gets 415 and never reaches the upstream', async () => {
    // The attack is real: the SDK's Express upstream, sent these bytes directly, runs secret_admin.
    const direct = await rawHttp(
      upstream.url,
      'POST',
      [...BASE, 'Content-Type', 'application/json; charset=utf-7'],
      utf7Smuggle(1),
    );
    assert.equal(direct.status, 200);
    assert.deepEqual(upstream.ran, ['secret_admin']);
    upstream.ran.length = 0;

    const before = recorder.received.length;
    const res = await post(
      gateway.mcpUrl,
      ['Content-Type', 'application/json; charset=utf-7'],
      utf7Smuggle(2),
    );
    assert.equal(res.status, 415);
    assert.equal(res.headers['content-type'], 'application/json');
    const body = JSON.parse(res.body) as { id: unknown; error: { code: number; message: string } };
    assert.equal(body.error.code, -32600);
    assert.match(body.error.message, /UTF-8/);
    assert.equal(recorder.received.length, before, 'nothing was forwarded');
    assert.deepEqual(upstream.ran, []);
    const line = await auditLine(gateway, res);
    assert.equal(line.status, 415);
    assert.equal(line.reason, 'ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses every charset other than UTF-8, in any case, quoted or not, repeated or malformed', async () => {
    const before = recorder.received.length;
    for (const type of [
      'application/json; charset=utf-16le',
      'application/json; charset=UTF-7',
      'application/json;charset="utf-7"',
      'application/json; charset=utf-8; charset=utf-7',
      'application/json; charset=latin1',
      'application/json; charset=utf8',
      'application/json; charset="utf-8',
      'application/json; charset',
      'text/plain',
    ]) {
      const res = await post(gateway.mcpUrl, ['Content-Type', type], call(3, 'echo', 'hi'));
      assert.equal(res.status, 415, type);
    }
    assert.equal(recorder.received.length, before, 'nothing was forwarded');
  });

  it('accepts UTF-8 spelled any way, and forwards its own Content-Type and Content-Length', async () => {
    for (const type of [
      'application/json',
      'Application/JSON; Charset=UTF-8',
      'application/json;charset="utf-8"',
      'application/json ; charset=utf-8 ; profile=x ;',
    ]) {
      const sent = `  ${call(4, 'echo', 'héllo')}  \n`;
      const res = await post(gateway.mcpUrl, ['Content-Type', type], sent);
      assert.equal(res.status, 200, `${type}: ${res.body}`);
      const seen = await waitFor(() => {
        const r = recorder.received.at(-1);
        return r?.complete ? r : undefined;
      });
      assert.equal(seen.headers['content-type'], 'application/json', type);
      assert.equal(seen.headers['content-length'], String(Buffer.byteLength(seen.body)), type);
      assert.notEqual(
        Buffer.byteLength(seen.body),
        Buffer.byteLength(sent),
        'the forwarded bytes are the gateway’s',
      );
    }
    assert.deepEqual(upstream.ran, ['echo', 'echo', 'echo', 'echo']);
  });

  it('compressed body: a non-identity Content-Encoding gets 415 and is never decoded or forwarded', async () => {
    const before = recorder.received.length;
    const plain = call(5, 'echo', 'hi');
    for (const [encoding, body] of [
      ['gzip', gzipSync(plain)],
      // Valid JSON labelled as compressed: the upstream would try to decode it (today it got the label).
      ['br', plain],
      ['identity, gzip', plain],
    ] as const) {
      const res = await post(
        gateway.mcpUrl,
        ['Content-Type', 'application/json', 'Content-Encoding', encoding],
        body,
      );
      assert.equal(res.status, 415, encoding);
      assert.match((JSON.parse(res.body) as { error: { message: string } }).error.message, /identity/);
    }
    assert.equal(recorder.received.length, before, 'nothing was forwarded');
    const ok = await post(
      gateway.mcpUrl,
      ['Content-Type', 'application/json', 'Content-Encoding', 'identity'],
      plain,
    );
    assert.equal(ok.status, 200);
    assert.equal(recorder.received.at(-1)?.headers['content-encoding'], undefined);
  });
});

describe('request headers toward the upstream: an allowlist', () => {
  let upstream: ExpressUpstream;
  let recorder: Recorder;
  let gateway: TestGateway;
  let custom: TestGateway;
  before(async () => {
    upstream = await startExpressUpstream();
    recorder = await startRecorder(upstream.url);
    gateway = await startTestGateway(config(recorder.url));
    custom = await startTestGateway(
      config(recorder.url, {
        top: 'public_url: https://mcp.example.com/mcp',
        upstream: '  forward_headers: [X-Trace-Id]\n  headers:\n    X-Upstream-Token: gateway-own',
      }),
    );
  });
  after(async () => {
    await custom.close(1000);
    await gateway.close(1000);
    await recorder.close();
    await upstream.close();
  });

  async function sendThrough(
    gw: TestGateway,
    headers: string[],
  ): Promise<{ res: RawAnswer; seen: Recorded }> {
    const before = recorder.received.length;
    const res = await post(
      gw.mcpUrl,
      ['Content-Type', 'application/json', ...headers],
      call(7, 'echo', 'hi'),
    );
    assert.equal(res.status, 200, res.body);
    assert.equal(recorder.received.length, before + 1);
    return { res, seen: recorder.received.at(-1)! };
  }

  it('identity-header spoofing: client-set identity and forwarding headers never reach the upstream', async () => {
    const spoofed = [
      'True-Client-IP',
      'CF-Connecting-IP',
      'X-Real-IP',
      'X-Client-IP',
      'Fastly-Client-IP',
      'X-Cluster-Client-IP',
      'Forwarded',
      'X-Forwarded-For',
      'X-Forwarded-Host',
      'X-Forwarded-Proto',
      'X-Forwarded-Port',
      'X-Authenticated-User',
      'Remote-User',
    ];
    const { res, seen } = await sendThrough(
      gateway,
      spoofed.flatMap((name) => [name, name === 'X-Forwarded-Proto' ? 'https' : '203.0.113.9']),
    );
    for (const name of spoofed) {
      const value = seen.headers[name.toLowerCase()];
      assert.ok(
        value === undefined || !String(value).includes('203.0.113.9'),
        `${name} reached the upstream`,
      );
    }
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], new URL(gateway.url).host);
    assert.equal(seen.headers['x-request-id'], res.headers['x-request-id']);
  });

  it('method-override and URL-rewrite headers never reach the upstream', async () => {
    const overrides = [
      'X-HTTP-Method-Override',
      'X-HTTP-Method',
      'X-Method-Override',
      'X-Original-Method',
      'X-Original-URL',
      'X-Rewrite-URL',
    ];
    const { seen } = await sendThrough(
      gateway,
      overrides.flatMap((name) => [name, name.endsWith('URL') ? '/admin' : 'DELETE']),
    );
    for (const name of overrides) assert.equal(seen.headers[name.toLowerCase()], undefined, name);
  });

  it('forwards exactly the allowlisted client headers plus what the gateway writes', async () => {
    const { seen } = await sendThrough(gateway, [
      'User-Agent',
      'e2e-agent/1',
      'Mcp-Method',
      'tools/call',
      'Mcp-Name',
      'echo',
      'Cookie',
      'sid=1',
      'X-Api-Key',
      KEY,
      'Accept-Encoding',
      'gzip, br',
      'Accept-Language',
      'de',
      'Origin-Trace',
      'x',
    ]);
    assert.deepEqual(Object.keys(seen.headers).sort(), [
      'accept',
      'accept-encoding',
      'connection', // undici's own, for its keep-alive pool
      'content-length',
      'content-type',
      'host',
      'mcp-method',
      'mcp-name',
      'mcp-protocol-version',
      'user-agent',
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-request-id',
    ]);
    assert.equal(seen.headers['accept-encoding'], 'identity');
    assert.equal(seen.headers.connection, 'keep-alive');
    assert.equal(seen.headers['user-agent'], 'e2e-agent/1');
    assert.equal(seen.headers['mcp-name'], 'echo');
    assert.equal(seen.headers.host, new URL(recorder.url).host);
  });

  it('adds upstream.forward_headers, sets upstream.headers last, and takes X-Forwarded-Host from public_url', async () => {
    const { seen } = await sendThrough(custom, [
      'X-Trace-Id',
      'trace-1',
      'X-Upstream-Token',
      'client-forged',
      'X-Other',
      'dropped',
    ]);
    assert.equal(seen.headers['x-trace-id'], 'trace-1');
    assert.equal(seen.headers['x-upstream-token'], 'gateway-own');
    assert.equal(seen.headers['x-other'], undefined);
    assert.equal(seen.headers['x-forwarded-host'], 'mcp.example.com');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
  });
});

/**
 * Attack review: "the client sees nothing it may not" and "the operator's surfaces leak nothing",
 * with a hostile or careless upstream and hostile clients. Each test starts its own raw upstream
 * (node:http, the test writes the bytes) and gateway on 127.0.0.1 port 0, and stops them.
 *
 * Tests named `attack: ...` (and `refused: ...`) assert the secure behaviour and failed on the code as reviewed; tests named
 * `holds: ...` are guards that pass today.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

const ALICE = mintKey(randomBytes(32));
const BOB = mintKey(randomBytes(32));
/** A well-formed JWT (HS256 header, a payload, a signature): what an access token looks like. */
const JWT = [
  Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url'),
  Buffer.from('{"sub":"alice","scope":"files:read"}').toString('base64url'),
  randomBytes(32).toString('base64url'),
].join('.');

type Message = { id?: string | number; method?: string; params?: Record<string, unknown> };
type Answer = (message: Message, res: ServerResponse, req: IncomingMessage) => void;

interface Harness {
  readonly gateway: TestGateway;
  /** The headers of every request the upstream received. */
  readonly seen: IncomingHttpHeaders[];
  answer: Answer;
  post(key: string, body: unknown, headers?: Record<string, string>): Promise<Got>;
}

interface Got {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

/** Answers every request `{}` and every notification 202 (until a test sets its own answer). */
const plainAnswer: Answer = (m, res) => {
  if (m.id === undefined) return void res.writeHead(202).end();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} }));
};

/**
 * A raw upstream and a gateway in front of it with two keys: alice (tool `echo`, prompt `greet`,
 * resources under `https://files.example/`) and bob (everything). Stopped when `run` ends.
 */
async function withGateway(
  run: (h: Harness) => Promise<void>,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const seen: IncomingHttpHeaders[] = [];
  const harness = { answer: plainAnswer } as { answer: Answer };
  const upstream = createServer((req, res) => {
    seen.push(req.headers);
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const parsed = text === '' ? {} : (JSON.parse(text) as Message | Message[]);
      // A batch is answered element by element in one JSON array.
      if (Array.isArray(parsed)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            parsed.filter((m) => m.id !== undefined).map((m) => ({ jsonrpc: '2.0', id: m.id, result: {} })),
          ),
        );
        return;
      }
      harness.answer(parsed, res, req);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const { port } = upstream.address() as AddressInfo;
  const gateway = await startTestGateway(
    JSON.stringify({
      listen: '127.0.0.1:0',
      upstream: { url: `http://127.0.0.1:${port}/mcp` },
      auth: { session_secret: 's'.repeat(40) },
      rate_limit: { capacity: 1_000_000, refill_per_second: 1_000_000 },
      keys: [
        {
          label: 'alice',
          hash: `sha256:${sha256Hex(ALICE)}`,
          allow: ['echo'],
          prompts: ['greet'],
          resources: ['https://files.example/*'],
        },
        { label: 'bob', hash: `sha256:${sha256Hex(BOB)}`, allow: ['*'], prompts: ['*'], resources: ['*'] },
      ],
      ...extra,
    }),
  );
  const h: Harness = Object.assign(harness, {
    gateway,
    seen,
    async post(key: string, body: unknown, headers: Record<string, string> = {}): Promise<Got> {
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${key}`,
          ...headers,
        },
        body: JSON.stringify(body),
      });
      return { status: res.status, headers: res.headers, body: await res.text() };
    },
  });
  try {
    await run(h);
  } finally {
    await gateway.close(100);
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  }
}

/** Waits until `count` audit lines were written (each request's line comes when it finished). */
async function auditLines(h: Harness, count: number): Promise<string[]> {
  await waitFor(() => h.gateway.auditLines.length >= count || undefined, 5000, `${count} audit lines`);
  return h.gateway.auditLines.map((line) => JSON.stringify(line));
}

/** The audit lines (by index) holding `secret`, for a failure message that does not print it. */
function linesHolding(lines: readonly string[], secret: string): string[] {
  return lines.flatMap((line, i) => {
    if (!line.includes(secret)) return [];
    const record = JSON.parse(line) as Record<string, unknown>;
    const fields = Object.keys(record).filter((k) => JSON.stringify(record[k]).includes(secret));
    return [`line ${i}: ${fields.join(', ')}`];
  });
}

describe('the operator: no key or token in the audit line, wherever a client puts it', () => {
  /**
   * Was a hole. README ("Audit log"): "Never in any log: keys, tokens, `Authorization`/`Cookie`/
   * `X-API-Key` values"; the `user_agent` and `request_id` rows replace a value "that looks like a
   * key or a token" (src/auth/user-agent.ts: "which is the promise for keys and tokens wherever a
   * client puts them"). `MCP-Protocol-Version` is a header like `User-Agent`, and the audit line
   * writes it verbatim (`protocol_version`, cut at 64 characters; a key has 54): a client that put
   * its key in the wrong header has it written to the audit log. (The same value is also forwarded
   * to the upstream as read.)
   */
  it('attack: a key sent as MCP-Protocol-Version is not written to the audit line', async () => {
    await withGateway(async (h) => {
      const got = await h.post(
        ALICE,
        { jsonrpc: '2.0', id: 1, method: 'ping' },
        { 'mcp-protocol-version': ALICE },
      );
      // Not a protocol revision: 400 with the request's id, and the upstream never sees it.
      assert.equal(got.status, 400, got.body);
      const error = JSON.parse(got.body) as { id: unknown; error: { code: number; message: string } };
      assert.equal(error.id, 1);
      assert.equal(error.error.code, -32600);
      assert.ok(!got.body.includes(ALICE), 'the key is echoed');
      assert.equal(h.seen.length, 0, 'forwarded to the upstream');
      // A protocol revision passes, with the white space a header value may carry.
      const ok = await h.post(
        ALICE,
        { jsonrpc: '2.0', id: 2, method: 'ping' },
        { 'mcp-protocol-version': ' 2025-11-25 ' },
      );
      assert.equal(ok.status, 200, ok.body);
      const lines = await auditLines(h, 2);
      assert.deepEqual(linesHolding(lines, ALICE), [], 'the key is in the audit log');
      assert.equal(JSON.parse(lines[1] as string).protocol_version, '2025-11-25');
    });
  });

  it('refused: a key given as the protocol version an initialize offers is not written to the audit line', async () => {
    await withGateway(async (h) => {
      await h.post(ALICE, {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: ALICE, capabilities: {}, clientInfo: { name: 'c', version: '1' } },
      });
      const lines = await auditLines(h, 1);
      assert.deepEqual(linesHolding(lines, ALICE), [], 'the key is in the audit log');
    });
  });

  /**
   * Was a hole. Same promise. The JSON-RPC id, an unknown method's name and a denied tool's name are
   * written as sent (`rpc_id`, `rpc_method`, `tool`, and each entry of a batch's `calls`), so a
   * client that sends its key or a bearer token there (a wrong field, a buggy SDK that uses the
   * token as a correlation id) has it in the audit log, while the same value in `X-Request-Id` is
   * replaced.
   */
  it('attack: a key or token as the JSON-RPC id, the method or the tool name is not written to the audit line', async () => {
    await withGateway(async (h) => {
      const sent = [
        { jsonrpc: '2.0', id: ALICE, method: 'tools/call', params: { name: 'echo', arguments: {} } },
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: JWT, arguments: {} } },
        { jsonrpc: '2.0', id: 3, method: ALICE },
        [{ jsonrpc: '2.0', id: JWT, method: 'ping' }],
      ];
      for (const body of sent) await h.post(ALICE, body, { 'mcp-protocol-version': '2025-03-26' });
      const lines = await auditLines(h, sent.length);
      assert.deepEqual(
        [...linesHolding(lines, ALICE), ...linesHolding(lines, JWT)],
        [],
        'a key or token is in the audit log',
      );
    });
  });

  /**
   * Was a hole. Same promise. Resource URIs are often signed or token-bearing URLs the upstream itself
   * listed (`https://files.example/report?access_token=<JWT>`, a presigned link); the gateway
   * refuses a key or a JWT anywhere in its own request's query string, but the `resource` field of
   * the audit line writes the judged URI whole, token included (allowed or denied alike; a key in
   * the URI's userinfo too).
   */
  it("attack: a token in a resource URI's query (or a key in its userinfo) is not written to the audit line", async () => {
    await withGateway(async (h) => {
      const allowed = await h.post(ALICE, {
        jsonrpc: '2.0',
        id: 1,
        method: 'resources/read',
        params: { uri: `https://files.example/report?access_token=${JWT}` },
      });
      assert.equal(allowed.status, 200);
      await h.post(ALICE, {
        jsonrpc: '2.0',
        id: 2,
        method: 'resources/read',
        params: { uri: `https://u:${ALICE}@files.example/x` },
      });
      const lines = await auditLines(h, 2);
      assert.equal(JSON.parse(lines[0]!).rpc_method, 'resources/read');
      assert.deepEqual(
        [...linesHolding(lines, JWT), ...linesHolding(lines, ALICE)],
        [],
        'a token or key is in the audit log',
      );
    });
  });

  /**
   * Holds. README ("Observability"): "Label values are bounded, so clients cannot create new
   * series." 100,000 distinct denied tool names (in batches of 1,000) and 100 distinct unknown
   * methods leave the tool label at `other` and add no method series; /metrics holds no key.
   */
  it('holds: 100,000 distinct denied tool names add no metric series', async () => {
    await withGateway(async (h) => {
      const before = (await (await fetch(h.gateway.runtime.metricsUrl!)).text()).split('\n').length;
      for (let b = 0; b < 100; b++) {
        const batch = Array.from({ length: 1000 }, (_, i) => ({
          jsonrpc: '2.0',
          id: i,
          method: 'tools/call',
          params: { name: `hidden-${b}-${i}-${'x'.repeat(b)}`, arguments: {} },
        }));
        const got = await h.post(ALICE, batch, { 'mcp-protocol-version': '2025-03-26' });
        assert.equal(got.status, 200);
      }
      for (let i = 0; i < 100; i++)
        await h.post(ALICE, { jsonrpc: '2.0', id: i, method: `evil/${i}/${ALICE}` });
      await auditLines(h, 200);
      const text = await (await fetch(h.gateway.runtime.metricsUrl!)).text();
      const toolSeries = text.split('\n').filter((l) => l.startsWith('mcpgate_tool_calls_total{'));
      assert.deepEqual(toolSeries, ['mcpgate_tool_calls_total{tool="other",decision="deny"} 100000']);
      assert.ok(!text.includes(ALICE), 'no key in /metrics');
      assert.ok(!text.includes('hidden-'), 'no client-chosen name in /metrics');
      // A few series for the decisions and methods seen; nothing per name.
      assert.ok(text.split('\n').length < before + 40, 'no series per name');
    });
  });
});

describe('the client: what a careless upstream sends beside the lists', () => {
  /**
   * Holds. README ("Security model" 10, responses): `Content-Type` passes, and "`Content-Type` is
   * the one the body was read as". An upstream's `charset=utf-7` (a client that honours it reads
   * `+ACIAfQAs-` as `"},`, a second tool) or a `+json` type reaches the client as plain
   * `application/json`, so every client reads the UTF-8 the gateway filtered.
   */
  it('holds: an upstream charset or +json type reaches the client as plain application/json', async () => {
    await withGateway(async (h) => {
      for (const type of ['application/json; charset=utf-7', 'application/vnd.evil+json; charset=utf-16le']) {
        h.answer = (m, res) => {
          res.writeHead(200, { 'content-type': type });
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id: m.id,
              result: { tools: [{ name: 'echo', description: '+ACIAfQAs-' }, { name: 'secret_admin' }] },
            }),
          );
        };
        const got = await h.post(ALICE, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
        assert.equal(got.status, 200);
        assert.equal(got.headers.get('content-type'), 'application/json');
        assert.doesNotMatch(got.body, /secret_admin/);
      }
    });
  });

  /**
   * Holds. Nothing of a response's head but the allowlist crosses: a 103 Early Hints (with `Link`
   * naming a hidden resource) and HTTP trailers are not relayed. Read on a raw socket, since fetch
   * hides both.
   */
  it('holds: 103 Early Hints and trailers from the upstream never reach the client', async () => {
    await withGateway(async (h) => {
      h.answer = (m, res) => {
        res.writeEarlyHints({ link: '<https://files.example/private/payroll>; rel=preload', 'x-hint': 'eh' });
        res.writeHead(200, { 'content-type': 'application/json', trailer: 'x-trail' });
        res.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} }));
        res.addTrailers({ 'x-trail': 'secret-trailer' });
        res.end();
      };
      const url = new URL(h.gateway.mcpUrl);
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } });
      const raw = await new Promise<string>((resolve) => {
        const socket = connect(Number(url.port), url.hostname, () =>
          socket.write(
            `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
              `Accept: application/json, text/event-stream\r\nAuthorization: Bearer ${ALICE}\r\n` +
              `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
          ),
        );
        let out = '';
        socket.on('data', (d: Buffer) => (out += d.toString()));
        socket.on('close', () => resolve(out));
        socket.on('error', () => resolve(out));
      });
      assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
      assert.doesNotMatch(raw, /103|payroll|x-hint|secret-trailer|x-trail/i);
      assert.match(raw, /"id":1,"result":\{\}/);
    });
  });

  /**
   * Holds. README: "a body the gateway cannot read ... is never passed on"; "a result with no id
   * ... is refused". Upstream error bodies that answer no request (a framework's
   * `{"detail": ...}`, a bare string, an array) do not reach the client: it gets the gateway's
   * own error. (An error with id `null`, or with no id, passes with its message, as documented.)
   */
  it('holds: an upstream 4xx/5xx JSON body that answers no request is not passed on', async () => {
    await withGateway(async (h) => {
      for (const [status, text] of [
        [500, '{"detail":"secret_admin exploded reading https://files.example/private/payroll"}'],
        [400, '[1,{"hidden":"secret_admin"}]'],
        [503, '"secret_admin is down"'],
      ] as const) {
        h.answer = (_m, res) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(text);
        };
        const got = await h.post(ALICE, {
          jsonrpc: '2.0',
          id: 7,
          method: 'tools/call',
          params: { name: 'echo', arguments: {} },
        });
        assert.doesNotMatch(got.body, /secret_admin|payroll/, `status ${status}`);
        assert.equal((JSON.parse(got.body) as { id: unknown }).id, 7);
      }
    });
  });

  /**
   * Holds. README (method table): "`tasks/list` ... the response lists only the key's own tasks";
   * "a task id the key did not create is unknown". An upstream that keeps one task store for all
   * sessions lists bob's task to alice: it is dropped; her tasks/get of it never reaches the
   * upstream. A task a careless upstream makes of a task-augmented `tools/list` (whose result
   * would be the unfiltered list) is not recorded for alice, so her tasks/result of it is refused.
   */
  it("holds: another key's task is neither listed nor readable, and a task-augmented tools/list gives no unfiltered result", async () => {
    await withGateway(async (h) => {
      const v = { 'mcp-protocol-version': '2025-11-25' };
      let n = 0;
      let upstreamTaskCalls = 0;
      h.answer = (m, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const reply = (result: unknown) => res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
        if (m.method === 'tools/call') return reply({ task: { taskId: `task-${++n}`, status: 'working' } });
        if (m.method === 'tools/list') return reply({ task: { taskId: 'list-task', status: 'completed' } });
        if (m.method === 'tasks/list')
          return reply({
            tasks: [
              { taskId: 'task-1', status: 'working' },
              { taskId: 'task-2', status: 'working' },
            ],
          });
        upstreamTaskCalls++;
        return reply({ tools: [{ name: 'echo' }, { name: 'secret_admin' }] });
      };
      const task = { ttl: 60_000 };
      await h.post(BOB, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', task } }, v);
      await h.post(ALICE, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', task } }, v);
      const listed = await h.post(ALICE, { jsonrpc: '2.0', id: 2, method: 'tasks/list' }, v);
      assert.deepEqual(JSON.parse(listed.body).result.tasks, [{ taskId: 'task-2', status: 'working' }]);
      const bobs = await h.post(
        ALICE,
        { jsonrpc: '2.0', id: 3, method: 'tasks/get', params: { taskId: 'task-1' } },
        v,
      );
      assert.ok(JSON.parse(bobs.body).error, 'an unknown task');
      await h.post(ALICE, { jsonrpc: '2.0', id: 4, method: 'tools/list', params: { task } }, v);
      const result = await h.post(
        ALICE,
        { jsonrpc: '2.0', id: 5, method: 'tasks/result', params: { taskId: 'list-task' } },
        v,
      );
      assert.doesNotMatch(result.body, /secret_admin/);
      assert.equal(upstreamTaskCalls, 0, 'no tasks/get or tasks/result of a task alice did not create');
    });
  });
});

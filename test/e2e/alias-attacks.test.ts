/**
 * Attack review: spellings of a member the gateway reads that an SDK's decoder reads as the same
 * field, beyond case. Each test sends bytes through a real gateway to a raw upstream
 * that records what it received, and reads those bytes as the SDK's decoder would.
 *
 * The Python SDK (modelcontextprotocol/python-sdk, `mcp` 2.x, src/mcp/types/_types.py) declares its
 * protocol models in snake_case on one base:
 *
 *     class MCPModel(BaseModel):
 *         model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
 *
 * so every multi-word field is read from its camelCase alias OR from its Python name:
 * `resource_subscriptions` (SubscriptionFilter, which repeats that config with extra="allow"),
 * `task_id` (GetTaskRequestParams, CancelTaskRequestParams, GetTaskPayloadRequestParams),
 * `request_id` (CancelledNotificationParams), and `meta` for `_meta`
 * (`meta: ... = Field(alias="_meta")` on RequestParams and NotificationParams). Pydantic
 * (docs: concepts/alias, `populate_by_name` / `validate_by_name`) looks the alias up first and the
 * name second; checked with pydantic 2.13.4 (model_validate_json and model_validate):
 * `{"task_id":"x"}` gives task_id='x', `{"taskId":"a","task_id":"b"}` gives 'a' in either order,
 * `{"meta":{...}}` gives meta, `{"_meta":A,"meta":B}` gives A. Fullwidth (`ｔａｓｋ_id`), trailing
 * space (`task_id `), `task_Id`, `taskID` and `TaskId` are not read (missing field).
 *
 * A test named "refused: ..." fails on the code it was written against: the gateway let a spelling
 * through that such an upstream reads as something the key may not do, or as a claim the gateway
 * did not judge. A test named "holds: ..." passes and guards a spelling that did not get through.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));
const MODERN_META = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}';
const DENIED_URI = 'file:///etc/shadow';

/**
 * Pydantic's lookup of one field under `populate_by_name=True`: the alias when the object has it,
 * else the field's Python name (pydantic-core LookupKey::Choice, alias first).
 */
function pydanticField(object: Record<string, unknown> | undefined, alias: string, name: string): unknown {
  if (object === undefined || object === null || typeof object !== 'object') return undefined;
  if (Object.hasOwn(object, alias)) return object[alias];
  if (Object.hasOwn(object, name)) return object[name];
  return undefined;
}

/** A forwarded body as the Python SDK's models read it: its params, `_meta` read through `meta` too. */
function pythonParams(raw: string): Record<string, unknown> | undefined {
  const m = JSON.parse(raw) as { params?: Record<string, unknown> };
  return m.params;
}

/** Go's encoding/json v1 fold of a key (envelope-attacks.test.ts goFold, ASCII part). */
function goField(object: Record<string, unknown> | undefined, field: string): unknown {
  if (object === undefined) return undefined;
  let value: unknown;
  for (const key of Object.keys(object)) if (key.toUpperCase() === field.toUpperCase()) value = object[key];
  return value;
}

describe('alias spellings of the members the gateway reads, through the gateway', () => {
  let gateway: TestGateway;
  let http: ReturnType<typeof createServer>;
  const received: string[] = [];

  before(async () => {
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        received.push(raw);
        const id = /"id":("[^"]*")/.exec(raw)?.[1] ?? 'null';
        if (id === 'null') return void res.writeHead(202).end();
        res.writeHead(200, { 'content-type': 'application/json' });
        // A task-augmented tools/call creates a task the gateway records for the key.
        if (raw.includes('"task":{')) {
          res.end(
            `{"jsonrpc":"2.0","id":${id},"result":{"task":{"taskId":"t-mine","status":"working","createdAt":"2026-01-01T00:00:00Z","lastUpdatedAt":"2026-01-01T00:00:00Z","ttl":null}}}`,
          );
          return;
        }
        res.end(`{"jsonrpc":"2.0","id":${id},"result":{}}`);
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'s'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: reader
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ["echo"]
    resources: ["file:///public/*"]
`);
  });
  after(async () => {
    await gateway.close(200);
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${KEY}`,
        ...headers,
      },
      body,
    });

  /** The JSON-RPC answer to a request (its status, id and error code). */
  async function answer(
    res: Response,
  ): Promise<{ status: number; id: unknown; code: unknown; text: string }> {
    const text = await res.text();
    let parsed: { id?: unknown; error?: { code?: unknown } } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      // an SSE or empty answer: no id, no error
    }
    return { status: res.status, id: parsed.id, code: parsed.error?.code, text };
  }

  // ---------------------------------------------------------------------------------------------
  // subscriptions/listen: `resource_subscriptions`
  // ---------------------------------------------------------------------------------------------

  it('holds (harness): subscriptions/listen naming a denied URI as "resourceSubscriptions" is refused', async () => {
    const before = received.length;
    const res = await post(
      `{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{${MODERN_META},"notifications":{"resourceSubscriptions":["${DENIED_URI}"]}}}`,
    );
    const a = await answer(res);
    assert.equal(a.id, 1, a.text);
    assert.equal(a.code, -32602, a.text);
    assert.equal(received.length, before, `forwarded: ${received.at(-1)}`);
  });

  it('refused: subscriptions/listen with "resource_subscriptions" subscribes a Python (pydantic populate_by_name) upstream to a denied URI', async () => {
    const before = received.length;
    const body = `{"jsonrpc":"2.0","id":2,"method":"subscriptions/listen","params":{${MODERN_META},"notifications":{"resource_subscriptions":["${DENIED_URI}"]}}}`;
    const a = await answer(await post(body));
    for (const raw of received.slice(before)) {
      const filter = pythonParams(raw)?.notifications as Record<string, unknown> | undefined;
      const uris = pydanticField(filter, 'resourceSubscriptions', 'resource_subscriptions');
      assert.ok(
        !(Array.isArray(uris) && uris.includes(DENIED_URI)),
        `a Python SDK upstream reads a subscription to ${DENIED_URI} from the forwarded bytes ${raw} (answer ${a.status} ${a.text})`,
      );
    }
    assert.equal(a.status, 200, a.text);
    assert.equal(a.id, 2, a.text);
    assert.equal(a.code, -32602, a.text);
    assert.equal(received.length, before);
  });

  it('refused: "resourceSubscriptions" (allowed) beside "resource_subscriptions" (denied): the variant is refused, not left to the decoder\'s order', async () => {
    const before = received.length;
    const body = `{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{${MODERN_META},"notifications":{"resource_subscriptions":["${DENIED_URI}"],"resourceSubscriptions":["file:///public/a.txt"]}}}`;
    const a = await answer(await post(body));
    for (const raw of received.slice(before)) {
      const filter = pythonParams(raw)?.notifications as Record<string, unknown> | undefined;
      const uris = pydanticField(filter, 'resourceSubscriptions', 'resource_subscriptions');
      assert.ok(
        !(Array.isArray(uris) && uris.includes(DENIED_URI)),
        `a Python SDK upstream reads ${DENIED_URI} from ${raw} (answer ${a.status} ${a.text})`,
      );
    }
    assert.equal(a.id, 3, a.text);
    assert.equal(a.code, -32602, a.text);
    assert.equal(received.length, before);
  });

  // ---------------------------------------------------------------------------------------------
  // tasks/*: `task_id`
  // ---------------------------------------------------------------------------------------------

  it('holds: tasks/get and tasks/cancel of another task as "task_id" alone are refused (no "taskId" to judge)', async () => {
    for (const [id, method] of [
      [4, 'tasks/get'],
      [5, 'tasks/cancel'],
      [6, 'tasks/result'],
    ] as const) {
      const before = received.length;
      const a = await answer(
        await post(`{"jsonrpc":"2.0","id":${id},"method":"${method}","params":{"task_id":"t-other"}}`),
      );
      assert.equal(a.id, id, a.text);
      assert.equal(a.code, -32602, a.text);
      assert.equal(received.length, before, `forwarded: ${received.at(-1)}`);
    }
  });

  it('refused: "taskId" (own task) beside "task_id" (another), in either order: the variant is refused, not left to the decoder\'s order', async () => {
    const created = await answer(
      await post(
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{},"task":{}}}',
      ),
    );
    assert.equal(created.status, 200, created.text);
    for (const [id, order] of [
      [8, '"task_id":"t-other","taskId":"t-mine"'],
      [9, '"taskId":"t-mine","task_id":"t-other"'],
    ] as const) {
      const before = received.length;
      const a = await answer(
        await post(`{"jsonrpc":"2.0","id":${id},"method":"tasks/get","params":{${order}}}`),
      );
      assert.equal(a.id, id, a.text);
      assert.equal(a.code, -32602, a.text);
      assert.match(a.text, /params\.task_id is another spelling of a member the gateway reads/);
      assert.equal(received.length, before, `forwarded: ${received.at(-1)}`);
    }
  });

  // ---------------------------------------------------------------------------------------------
  // `meta` for `_meta`: the 2026-07-28 protocol version claim
  // ---------------------------------------------------------------------------------------------

  it('holds (harness): an MCP-Protocol-Version header that disagrees with the "_meta" claim is refused 400 -32020', async () => {
    const before = received.length;
    const a = await answer(
      await post(
        `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{${MODERN_META},"name":"echo","arguments":{}}}`,
        { 'mcp-protocol-version': '2025-11-25' },
      ),
    );
    assert.equal(a.status, 400, a.text);
    assert.equal(a.id, 10, a.text);
    assert.equal(a.code, -32020, a.text);
    assert.equal(received.length, before);
  });

  it('refused: the same claim spelled "meta" (pydantic: alias "_meta", populate_by_name) passes the header check unread', async () => {
    const before = received.length;
    const body =
      '{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"name":"echo","arguments":{}}}';
    const a = await answer(await post(body, { 'mcp-protocol-version': '2025-11-25' }));
    for (const raw of received.slice(before)) {
      const meta = pydanticField(pythonParams(raw), '_meta', 'meta') as Record<string, unknown> | undefined;
      const claim = meta?.['io.modelcontextprotocol/protocolVersion'];
      assert.notEqual(
        claim,
        '2026-07-28',
        `forwarded with MCP-Protocol-Version: 2025-11-25, a Python SDK upstream reads the body's claim ${String(claim)} from ${raw} (answer ${a.status} ${a.text})`,
      );
    }
    // Refused as a header mismatch (400 -32020) or as invalid params (a JSON-RPC error, HTTP 200).
    assert.ok((a.status === 400 && a.code === -32020) || (a.status === 200 && a.code === -32602), a.text);
    assert.equal(a.id, 11, a.text);
    assert.equal(received.length, before);
  });

  it('holds (harness): a method 2026-07-28 removed, with the "_meta" claim, is answered 404 -32601 and not forwarded', async () => {
    const before = received.length;
    const a = await answer(
      await post(
        `{"jsonrpc":"2.0","id":12,"method":"logging/setLevel","params":{${MODERN_META},"level":"debug"}}`,
      ),
    );
    assert.equal(a.status, 404, a.text);
    assert.equal(a.id, 12, a.text);
    assert.equal(a.code, -32601, a.text);
    assert.equal(received.length, before);
  });

  it('refused: the same with the claim spelled "meta" is judged as a 2025 request and forwarded', async () => {
    const before = received.length;
    const a = await answer(
      await post(
        '{"jsonrpc":"2.0","id":13,"method":"logging/setLevel","params":{"meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"level":"debug"}}',
      ),
    );
    assert.equal(received.length, before, `forwarded: ${received.at(-1)} (answer ${a.status} ${a.text})`);
    assert.equal(a.id, 13, a.text);
    // Judged as the claim (404 -32601), or the spelling refused (200 -32602).
    assert.ok(
      (a.status === 404 && a.code === -32601) || (a.status === 200 && a.code === -32602),
      `${a.status} ${a.text}`,
    );
  });

  // ---------------------------------------------------------------------------------------------
  // notifications/cancelled: `request_id` (Python) and `RequestId` (Go encoding/json)
  // ---------------------------------------------------------------------------------------------

  it('holds (harness): a cancellation\'s "requestId" reaches the upstream as a gateway tag, never the client\'s id', async () => {
    const before = received.length;
    const res = await post(
      '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"client-7"}}',
    );
    await res.text();
    for (const raw of received.slice(before)) {
      assert.notEqual(pythonParams(raw)?.requestId, 'client-7', raw);
    }
  });

  it('refused: a cancellation naming the request as "request_id" reaches a Python upstream with the client\'s own id, untranslated', async () => {
    const before = received.length;
    const res = await post(
      '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"request_id":"client-7","reason":"x"}}',
    );
    const text = await res.text();
    for (const raw of received.slice(before)) {
      const read = pydanticField(pythonParams(raw), 'requestId', 'request_id');
      assert.notEqual(
        read,
        'client-7',
        `a Python SDK upstream reads the client's id as the cancelled request from ${raw} (answer ${res.status} ${text})`,
      );
    }
  });

  it('refused: a cancellation naming the request as "RequestId" (not a member the judge checks for case twins) reaches a Go upstream untranslated', async () => {
    const before = received.length;
    const res = await post(
      '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"RequestId":"client-8"}}',
    );
    const text = await res.text();
    for (const raw of received.slice(before)) {
      const read = goField(pythonParams(raw), 'requestId');
      assert.notEqual(
        read,
        'client-8',
        `a Go encoding/json upstream reads the client's id as the cancelled request from ${raw} (answer ${res.status} ${text})`,
      );
    }
  });
});

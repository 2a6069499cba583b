/**
 * Kept numbers (lossless.ts) deeper than a message's members' members are put into the parsed value
 * only when something reads them: the audit of arguments or an `Mcp-Param-*` header
 * (jsonrpc/read-depth.ts). Differential: for generated bodies full of kept numbers in every member
 * the gateway reads (ids, params.name, requestId, task, notifications, ref, _meta, arguments), at
 * every depth, in batches and beside repeated keys, the inspect step that places only those gives
 * exactly what the one that places every number gives: the same refusal (code, message, id), the
 * same decisions and call records, the same answer, plans and forwarded bytes, and the same tagged
 * bytes and tags. The same holds for long strings (jsonrpc/skeleton.ts): those in `params.arguments`
 * are built only when the arguments are read.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createInspect } from '../../../src/pipeline/inspect.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import { tagRequests } from '../../../src/integrity/restore.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { isRawNumber } from '../../../src/jsonrpc/lossless.ts';

const grants = compileGrants({ allow: ['echo'], prompts: ['greeting'], resources: ['file:///public/*'] });
const principal = { kind: 'key', name: 'k', keyId: 'k1', bindingId: 'b1', grants, limits: undefined };
const tasks = new TaskOwnership({ now: () => 0 });
const base = { unknownMethods: 'deny', tasks } as const;
const placingAll = createInspect({ ...base, auditArguments: true });
const placingRead = createInspect({ ...base, auditArguments: false });

function context(rawHeaders: string[]): RequestContext {
  return {
    req: { rawHeaders },
    principal,
    calls: [],
    messages: undefined,
    batch: false,
    protocolVersion: undefined,
  } as unknown as RequestContext;
}

/** Everything inspect decides for a body, and the bytes the upstream would get after tagging. */
function outcome(inspect: typeof placingAll, body: string, rawHeaders: string[]): unknown {
  const ctx = context(rawHeaders);
  try {
    const result = inspect(ctx, Buffer.from(body));
    const tagger = createRequestTagger(Buffer.alloc(32, 7), { random: (n) => Buffer.alloc(n, 1) });
    const tagged = tagRequests(result.bytes, ctx.messages ?? [], result.plans, {
      tagger,
      bindingId: 'b1',
      sessionId: undefined,
      pending: undefined,
    });
    return {
      bytes: result.bytes.toString('utf8'),
      answer: result.answer,
      plans: result.plans === undefined ? undefined : [...result.plans],
      calls: JSON.stringify(ctx.calls),
      decision: ctx.decision,
      reason: ctx.reason,
      protocolVersion: ctx.protocolVersion,
      tagged: tagged.bytes.toString('utf8'),
      tags: [...tagged.tags],
    };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return { code: err.code, message: err.message, rpcId: err.rpcId, status: err.status, reason: ctx.reason };
  }
}

const kept = fc.constantFrom('1.0', '-0', '1e400', '12345678901234567890', '0.10', '1E2', '-0.0');
const number = fc.oneof(kept, fc.constantFrom('1', '7', '2.5'));
const ws = fc.constantFrom('', ' ', '\n');
/** Long strings too: built only when read (jsonrpc/skeleton.ts), so they are judged alike. */
const long = (unit: string) => `"${unit.repeat(Math.ceil((17 * 1024) / unit.length))}"`;
const str = fc.constantFrom(
  '"echo"',
  '"secret"',
  '"greeting"',
  '"file:///public/a"',
  '"ref/prompt"',
  '"2026-07-28"',
  long('echo'),
  long('a\\"'),
  long('é\\n'),
  '"\\u00000"',
);

/** Any JSON value, dense in kept numbers. */
const deep: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    number,
    number,
    str,
    fc.constantFrom('true', 'null', '{}', '[]'),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(fc.constantFrom('a', 'b', 'type', 'name', 'uri', 'extensions'), tie('value')), {
        maxLength: 4,
      })
      .map((members) => `{${members.map(([k, v]) => `"${k}":${v}`).join(',')}}`),
  ),
})).value;

const meta = fc.oneof(
  number,
  fc
    .array(
      fc.tuple(
        fc.constantFrom(
          'progressToken',
          'io.modelcontextprotocol/protocolVersion',
          'io.modelcontextprotocol/clientCapabilities',
        ),
        fc.oneof(deep, fc.constant('{"extensions":{"io.modelcontextprotocol/tasks":1.0}}')),
      ),
      { maxLength: 3 },
    )
    .map((members) => `{${members.map(([k, v]) => `"${k}":${v}`).join(',')}}`),
);

/** A value for a member of params: often a kept number, else a string, a shape the judge reads, or anything. */
const member = fc.oneof(
  { arbitrary: kept, weight: 4 },
  { arbitrary: str, weight: 2 },
  { arbitrary: deep, weight: 2 },
  {
    arbitrary: fc
      .tuple(fc.array(fc.oneof(kept, str), { maxLength: 3 }), fc.array(fc.oneof(kept, str), { maxLength: 2 }))
      .map(([uris, ids]) => `{"resourceSubscriptions":[${uris.join(',')}],"taskIds":[${ids.join(',')}]}`),
    weight: 1,
  },
  {
    arbitrary: fc
      .tuple(fc.oneof(str, kept), fc.oneof(str, kept))
      .map(([t, n]) => `{"type":${t},"name":${n}}`),
    weight: 1,
  },
  { arbitrary: meta, weight: 2 },
);

const params = fc
  .tuple(
    fc.oneof(fc.constant('"echo"'), str, kept),
    fc.array(
      fc.tuple(
        fc.constantFrom(
          'task',
          'requestId',
          'notifications',
          'ref',
          '_meta',
          'arguments',
          'uri',
          'taskId',
          'protocolVersion',
          'name',
        ),
        member,
      ),
      { maxLength: 4 },
    ),
  )
  .map(([name, members]) => `{${[['name', name], ...members].map(([k, v]) => `"${k}":${v}`).join(',')}}`);

const message = fc
  .tuple(
    fc.oneof(number, fc.constantFrom('"a"', '"b"'), fc.constant(undefined)),
    fc.constantFrom(
      'tools/call',
      'tools/call',
      'prompts/get',
      'resources/read',
      'completion/complete',
      'subscriptions/listen',
      'notifications/cancelled',
      'notifications/cancelled',
      'tasks/get',
      'tools/list',
    ),
    fc.oneof(
      { arbitrary: params, weight: 6 },
      { arbitrary: kept, weight: 1 },
      { arbitrary: fc.constant(undefined), weight: 1 },
    ),
    ws,
  )
  .map(([id, method, p, w]) => {
    const members = ['"jsonrpc":"2.0"', `"method":"${method}"`];
    if (id !== undefined && method !== 'notifications/cancelled') members.push(`"id":${id}`);
    if (p !== undefined) members.push(`"params":${p}`);
    return `{${members.join(`,${w}`)}}`;
  });

const body = fc.oneof(
  message,
  message,
  fc.array(message, { minLength: 1, maxLength: 3 }).map((ms) => `[${ms.join(',')}]`),
);

const headers = fc
  .array(
    fc.oneof(
      fc.tuple(fc.constant('Mcp-Method'), fc.constantFrom('tools/call', 'prompts/get')),
      fc.tuple(fc.constant('Mcp-Name'), fc.constantFrom('echo', '1', '1.0')),
      fc.tuple(fc.constant('MCP-Protocol-Version'), fc.constantFrom('2026-07-28', '1.0')),
    ),
    { maxLength: 2 },
  )
  .map((pairs) => pairs.flat());

describe('placing only the kept numbers the gateway reads (differential)', () => {
  it('decides, answers and forwards exactly as placing every number', () => {
    let allowed = 0;
    fc.assert(
      fc.property(body, headers, (text, raw) => {
        const all = outcome(placingAll, text, raw);
        assert.deepStrictEqual(outcome(placingRead, text, raw), all);
        const result = all as { bytes?: string; answer?: unknown };
        if (result.bytes !== undefined && result.answer === undefined) allowed++;
      }),
      { numRuns: 4000 },
    );
    assert.ok(allowed > 200, `${allowed} bodies allowed`);
  });

  it('places a deep number only when read: the audit logs arguments, or an Mcp-Param header is sent', () => {
    const text =
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","task":1.0,"arguments":{"x":1.0}}}';
    const placed = (inspect: typeof placingAll, raw: string[]) => {
      const ctx = context(raw);
      inspect(ctx, Buffer.from(text));
      const params = (
        ctx.messages?.[0] as unknown as { params: { task: unknown; arguments: { x: unknown } } }
      ).params;
      return { task: isRawNumber(params.task), x: isRawNumber(params.arguments.x) };
    };
    assert.deepEqual(placed(placingRead, []), { task: true, x: false });
    assert.deepEqual(placed(placingAll, []), { task: true, x: true });
    assert.deepEqual(placed(placingRead, ['Mcp-Param-X', '1.0']), { task: true, x: true });
  });
});

/**
 * The members of params and params._meta no rule reads are left out of JSON.parse in a large body
 * (jsonrpc/unread-spans.ts: 128 KiB and up, when nothing reads the arguments), and reach the parsed
 * value as placeholders. Differential: bodies of the generator above with such a member added (a
 * large array under a key no rule reads, in params or in its `_meta`, next to every member the
 * gateway reads) are decided, answered and forwarded exactly as when the whole body is built. Should
 * a rule read a member unread-spans.ts leaves out, a decision here would differ.
 */
const PAD = `[${Array.from({ length: 8 }, () => long('pad')).join(',')},{"a":[1.0,-0,"x"]}]`;
const padded = fc
  .tuple(
    fc.constantFrom(
      `"x":${PAD}`,
      `"cursor":${PAD}`,
      `"_meta":{"k":${PAD},"progressToken":1}`,
      `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","k":${PAD}}`,
      `"x":{"name":"secret","task":{},"nested":${PAD}}`,
    ),
    fc.boolean(),
  )
  .chain(([pad, first]) =>
    message.map((m) => {
      const at = m.indexOf('"params":{');
      if (at === -1) return m;
      const open = at + '"params":{'.length;
      return first ? `${m.slice(0, open)}${pad},${m.slice(open)}` : `${m.slice(0, -2)},${pad}}}`;
    }),
  )
  .filter((m) => m.length > 128 * 1024);

/** Each member the gateway reads as an object, in a request whose decision depends on it. */
const READ_OBJECTS = [
  '"method":"tools/call","params":{"name":"echo","task":{"ttl":1000}}',
  '"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}',
  '"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}',
  '"method":"logging/setLevel","params":{"level":"info","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}',
  '"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"secret"},"argument":{"name":"a","value":""}}',
  '"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greeting"},"argument":{"name":"a","value":""}}',
  '"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{"resourceSubscriptions":["file:///secret"]}}',
  '"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{"resourceSubscriptions":["file:///public/a"]}}',
];

describe('leaving out the params members no rule reads (differential)', () => {
  it('decides, answers and forwards exactly as building the whole body', () => {
    let allowed = 0;
    let leftOut = 0;
    fc.assert(
      fc.property(padded, headers, (text, raw) => {
        const all = outcome(placingAll, text, raw);
        assert.deepStrictEqual(outcome(placingRead, text, raw), all);
        const result = all as { bytes?: string; answer?: unknown };
        if (result.bytes !== undefined && result.answer === undefined) allowed++;
        if (unbuilt(text)) leftOut++;
      }),
      { numRuns: 400 },
    );
    assert.ok(allowed > 20, `${allowed} bodies allowed`);
    assert.ok(leftOut > 100, `${leftOut} bodies had a member left out`);
  });

  it('each member the gateway reads as an object is judged alike beside a member left out, before or after it', () => {
    const at = (text: string, i: number, insert: string) => `${text.slice(0, i)}${insert}${text.slice(i)}`;
    for (const request of READ_OBJECTS) {
      const params = request.indexOf('{', request.indexOf('"params"')) + 1;
      const meta = request.indexOf('"_meta":{');
      const texts = [
        at(request, params, `"x":${PAD},`),
        at(request, request.length - 1, `,"x":${PAD}`),
        meta === -1
          ? at(request, params, `"_meta":{"k":${PAD}},`)
          : at(request, meta + '"_meta":{'.length, `"k":${PAD},`),
      ];
      if (meta !== -1) {
        // The brace that closes `_meta` (no string in these requests holds a brace).
        let close = meta + '"_meta":'.length;
        for (let depth = 0; ; close++) {
          if (request[close] === '{') depth++;
          else if (request[close] === '}' && --depth === 0) break;
        }
        texts.push(at(request, close, `,"k":${PAD}`));
      }
      for (const inner of texts) {
        const text = `{"jsonrpc":"2.0","id":1,${inner}}`;
        assert.ok(unbuilt(text), `nothing left out of ${inner.slice(0, 120)}`);
        assert.deepStrictEqual(outcome(placingRead, text, []), outcome(placingAll, text, []), request);
      }
    }
  });
});

/** Whether the inspect step that reads no arguments left some member of params unbuilt. */
function unbuilt(text: string): boolean {
  const ctx = context([]);
  try {
    placingRead(ctx, Buffer.from(text));
  } catch {
    return false;
  }
  return (ctx.messages ?? []).some((m) => {
    const params = (m as { params?: Record<string, unknown> }).params;
    if (typeof params !== 'object' || params === null) return false;
    const meta = params._meta as Record<string, unknown> | undefined;
    const placeholders = [params.x, params.cursor, typeof meta === 'object' && meta !== null ? meta.k : 0];
    return placeholders.some((v) => typeof v === 'string' && v.charCodeAt(0) === 0);
  });
}

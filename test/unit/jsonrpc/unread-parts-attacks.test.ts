/**
 * Attack review of d8fe067: the members of params and params._meta no rule reads are left out of
 * JSON.parse (unread-spans.ts, skeleton.ts) and forwarded as the client spelled them (splice.ts).
 * Each body is parsed with those parts left out (nothing reads the arguments; the real threshold,
 * or skeletonFrom 0 to force it on a small body) and whole (skeleton off). Secure behaviour: both
 * refuse alike, or both accept the same messages as readers read them, and the forwarded bytes
 * mean the judged value to a last-wins parser (JSON.parse), to a first-wins parser, and to the
 * upstream's own JSON.parse (a fresh Node process: V8's key cache is per process).
 *
 * Tests named "held: ..." are guards that passed on the code reviewed; the others showed a hole and
 * failed on it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { BODY_LIMITS, MAX_VALUES, parseBody, SKELETON_FROM } from '../../../src/jsonrpc/parse.ts';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { walkTree } from '../../../src/jsonrpc/tree.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';
import { createInspect } from '../../../src/pipeline/inspect.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';
import { applyEdits } from '../../helpers/break-body.ts';
import { readersView } from '../../helpers/reader-view.ts';

/** A left-out member of ~143 KB (plain strings only): with it a body is past 8 × SKELETON_FROM. */
const PAD = `[${Array.from({ length: 130 }, (_, i) => `"${String(i).padEnd(1100, 'p')}"`).join(',')}]`;
const LONG = 'L'.repeat(1100);
const call = (params: string, id = '1', method = 'tools/call') =>
  `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${params}}`;

/** A parser that keeps the first member of a repeated key (bytes JSON.parse accepted). */
function firstWins(text: string): unknown {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const str = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): unknown => {
    ws();
    if (text[i] === '{') {
      i++;
      const o = new Map<string, unknown>();
      ws();
      if (text[i] === '}') i++;
      else
        for (;;) {
          ws();
          const k = str();
          ws();
          i++;
          const v = value();
          if (!o.has(k)) o.set(k, v);
          ws();
          if (text[i++] === '}') break;
        }
      const out = {};
      for (const [k, v] of o)
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      return out;
    }
    if (text[i] === '[') {
      i++;
      const a: unknown[] = [];
      ws();
      if (text[i] === ']') i++;
      else
        for (;;) {
          a.push(value());
          ws();
          if (text[i++] === ']') break;
        }
      return a;
    }
    if (text[i] === '"') return str();
    const start = i;
    while (i < text.length && !',]} \t\n\r'.includes(text[i] as string)) i++;
    return JSON.parse(text.slice(start, i));
  };
  return value();
}

function repeatsAKey(bytes: Buffer): boolean {
  const scan = scanJson(bytes, BODY_LIMITS);
  return !scan.ok || scan.values !== walkTree(JSON.parse(bytes.toString('utf8')), true).values;
}

type Outcome =
  | { readonly code: string; readonly id: unknown }
  | { readonly meaning: unknown; readonly messages: unknown; readonly keys: unknown; readonly bytes: string };

function outcome(body: Buffer, skeletonFrom: number, argumentsRead = false): Outcome {
  try {
    const parsed = parseBody(body, KNOWN_METHODS, BODY_LIMITS, argumentsRead, skeletonFrom);
    return {
      meaning: JSON.parse(parsed.bytes.toString('utf8')),
      messages: parsed.messages.map(readersView),
      // The keys of params and of params._meta: the judge's case-variant check reads them all.
      keys: parsed.messages.map((m) => {
        const p = (m as { params?: Record<string, unknown> }).params;
        if (typeof p !== 'object' || p === null) return null;
        const meta = p._meta;
        return [Object.keys(p), typeof meta === 'object' && meta !== null ? Object.keys(meta) : null];
      }),
      bytes: parsed.bytes.toString('utf8'),
    };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return { code: err.code, id: err.rpcId };
  }
}

/**
 * Parts left out (at `from`) and whole: alike, and the forwarded bytes mean one value to a
 * last-wins and a first-wins parser. Returns the left-out outcome.
 */
function alike(text: string | Buffer, from = 0): Outcome {
  const body = typeof text === 'string' ? Buffer.from(text) : text;
  const fast = outcome(body, from);
  const whole = outcome(body, Infinity);
  if ('code' in fast || 'code' in whole) {
    assert.deepStrictEqual(fast, whole);
    return fast;
  }
  assert.ok('meaning' in fast && 'meaning' in whole);
  assert.deepStrictEqual(fast.messages, whole.messages);
  assert.deepStrictEqual(fast.keys, whole.keys);
  assert.deepStrictEqual(fast.meaning, whole.meaning);
  assert.deepStrictEqual(firstWins(fast.bytes), fast.meaning, 'a first-wins parser reads another value');
  assert.equal(repeatsAKey(Buffer.from(fast.bytes)), false, 'the forwarded bytes repeat a key');
  return fast;
}

/** Whether params member `key` of message `m` was left out (it holds a placeholder). */
function leftOut(body: string, key: string, meta = false, m = 0): boolean {
  const parsed = parseBody(Buffer.from(body), KNOWN_METHODS, BODY_LIMITS, false);
  const params = (parsed.messages[m] as unknown as { params: Record<string, Record<string, unknown>> })
    .params;
  const v = meta ? params._meta?.[key] : params[key];
  return typeof v === 'string' && v.charCodeAt(0) === 0;
}

/** What a Node upstream (a fresh process, the same V8) reads from forwarded bytes. */
function upstreamReads(bytes: Buffer): unknown {
  const script =
    'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(JSON.parse(s))))';
  const child = spawnSync(process.execPath, ['-e', script], { input: bytes });
  assert.equal(child.status, 0, child.stderr.toString());
  return JSON.parse(child.stdout.toString());
}

describe('params members left out of JSON.parse: holes', () => {
  it('a key holding a backslash inside a left-out part plants a V8 key misread: the upstream reads _meta without the protocol version judged', () => {
    // V8's JSON.parse (Node 24) reads a key spelled with an escape as an earlier key, after the same
    // keys, that holds a backslash where the escape begins (key-check.ts). The gateway checks its own
    // parse only; the part holding the earlier key is never parsed here, so nothing is refused,
    // and the client's bytes go upstream as they are.
    const body = call(
      String.raw`{"name":"echo","x":[{"zq1":1,"io.modelcontextprotocol\\/protocolVersio":1}],"_meta":{"zq1":1,"io.modelcontextprotocol\/protocolVersion":"2026-07-28"},"pad":${PAD}}`,
    );
    assert.ok(body.length >= 8 * SKELETON_FROM);
    assert.ok(leftOut(body, 'x'));
    const parsed = parseBody(Buffer.from(body), KNOWN_METHODS, BODY_LIMITS, false);
    const judged = (parsed.messages[0] as unknown as { params: { _meta: unknown } }).params._meta;
    assert.deepStrictEqual(judged, { zq1: 1, 'io.modelcontextprotocol/protocolVersion': '2026-07-28' });
    const upstream = upstreamReads(parsed.bytes) as { params: { _meta: unknown } };
    // Now: { zq1: 1, 'io.modelcontextprotocol\\/protocolVersio': '2026-07-28' }. (With the whole body
    // given to JSON.parse in a fresh process, the gateway refuses it: "an object key was not read as
    // it is spelled". The same holds with the planting key in params.arguments left out.)
    assert.deepStrictEqual(
      upstream.params._meta,
      judged,
      'the upstream reads another _meta than the one judged',
    );
  });

  it('a key holding a backslash inside a left-out part, a key repeated elsewhere: accepted with the part left out, refused whole', () => {
    for (const params of [
      `{"name":"echo","name":"echo","x":{"a\\\\":1},"pad":${PAD}}`,
      `{"name":"rm","x":{"a\\\\":1},"pad":${PAD},"name":"echo"}`,
      `{"name":"echo","_meta":{"k":[{"b\\\\":2}],"progressToken":1,"progressToken":2},"pad":${PAD}}`,
    ]) {
      const body = call(params);
      assert.ok(body.length >= 8 * SKELETON_FROM);
      // Left out: accepted, judged as a call of echo. Whole: ERR_INVALID_REQUEST, "an object key was
      // not read as it is spelled" (key-check.ts cannot pair a repeated key's members).
      assert.deepStrictEqual(
        outcome(Buffer.from(body), SKELETON_FROM),
        outcome(Buffer.from(body), Infinity),
        params.slice(0, 60),
      );
    }
  });
});

describe('keys spelled with an escape reach the upstream plainly', () => {
  it('a planter in an EARLIER body (any client, any path) cannot hide a judged _meta member from a Node upstream', () => {
    // V8's key cache outlives a body: after this one, a fresh Node process reads the key
    // `io.modelcontextprotocol\/protocolVersion` (spelled with `\/`) after `zq1` as the planted key.
    const planter = String.raw`{"_meta":{"zq1":1,"io.modelcontextprotocol\\/protocolVersio":1}}`;
    const victim = String.raw`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","_meta":{"zq1":1,"io.modelcontextprotocol\/protocolVersion":"2026-07-28"}}}`;
    // The gateway's side in a process of its own too: this file's other bodies planted the same
    // key in this one (where the gateway's own check refuses the misread body).
    const parse = new URL('../../../src/jsonrpc/parse.ts', import.meta.url).href;
    const methods = new URL('../../../src/policy/methods.ts', import.meta.url).href;
    const gateway = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { parseBody } from ${JSON.stringify(parse)}; import { KNOWN_METHODS } from ${JSON.stringify(methods)};
         const parsed = parseBody(Buffer.from(${JSON.stringify(victim)}), KNOWN_METHODS, undefined, false);
         process.stdout.write(JSON.stringify({ judged: parsed.messages[0].params._meta, forwarded: parsed.bytes.toString('utf8') }));`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(gateway.status, 0, gateway.stderr);
    const { judged, forwarded } = JSON.parse(gateway.stdout) as {
      judged: Record<string, unknown>;
      forwarded: string;
    };
    assert.equal(judged['io.modelcontextprotocol/protocolVersion'], '2026-07-28');
    assert.ok(!forwarded.includes('\\/'), `forwarded spelled with an escape: ${forwarded}`);
    const script = `JSON.parse(${JSON.stringify(planter)}); process.stdout.write(JSON.stringify(JSON.parse(${JSON.stringify(forwarded)}).params._meta))`;
    const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), judged, 'the upstream reads another _meta than the one judged');
  });
});

describe('params members left out of JSON.parse: attacks that held', () => {
  it('held: nesting at the 64 limit through a part, in params and in params._meta', () => {
    const nest = (d: number) => `${'['.repeat(d)}1${']'.repeat(d)}`;
    for (const [params, refused] of [
      [`{"name":"echo","x":${nest(62)},"pad":${PAD}}`, false],
      [`{"name":"echo","x":${nest(63)},"pad":${PAD}}`, true],
      [`{"name":"echo","_meta":{"x":${nest(61)}},"pad":${PAD}}`, false],
      [`{"name":"echo","_meta":{"x":${nest(62)}},"pad":${PAD}}`, true],
    ] as const) {
      const got = alike(call(params), SKELETON_FROM);
      assert.equal('code' in got, refused);
      if (!refused) assert.ok(leftOut(call(params), 'x', params.includes('"_meta":{"x"')));
    }
    // In a batch (one more level) too.
    const batch = `[${call(`{"name":"echo","x":${nest(61)},"pad":${PAD}}`)},${call('{"name":"echo"}', '2')}]`;
    assert.ok('meaning' in alike(batch, SKELETON_FROM));
  });

  it('held: the value limit counts the values inside parts', () => {
    // 13 values outside the part's array (message, keys, strings), the pad's 131, the array's items.
    const base = call(`{"name":"echo","pad":${PAD},"x":[]}`);
    const baseValues = (scanJson(Buffer.from(base), BODY_LIMITS) as { values: number }).values;
    for (const extra of [0, 1]) {
      const items = MAX_VALUES - baseValues + extra;
      const body = call(`{"name":"echo","pad":${PAD},"x":[${'0,'.repeat(items - 1)}0]}`);
      const got = alike(body, SKELETON_FROM);
      assert.equal('code' in got, extra === 1);
    }
  });

  it('held: client strings that spell a placeholder ("\\u0000k") beside parts', () => {
    for (const params of [
      `{"name":"echo","cursor":"\\u00000","x":${PAD}}`,
      `{"name":"echo","x":${PAD},"cursor":"\\u00001","y":[1]}`,
      `{"name":"\\u00000","x":${PAD}}`,
      `{"name":"echo","_meta":{"progressToken":"\\u00000","k":${PAD}}}`,
      `{"name":"echo","x":${PAD},"y":{"\\u00000":"\\u00001"}}`,
      // A long string given back that begins with U+0000 and reads as an index to Number().
      `{"name":"echo","x":${PAD},"cursor":"\\u00000${' '.repeat(1100)}","name":"echo"}`,
      `{"name":"echo","x":${PAD},"cursor":"\\u00000x0${' '.repeat(1100)}"}`,
    ]) {
      alike(call(params), SKELETON_FROM);
      alike(call(params), 0);
    }
  });

  it('held: read members hidden in, next to, or spelled like parts are judged alike (inspect, real size)', () => {
    const grants = compileGrants({ allow: ['echo'], prompts: ['greeting'], resources: ['file:///public/*'] });
    const principal = { kind: 'key', name: 'k', keyId: 'k1', bindingId: 'b1', grants, limits: undefined };
    const tasks = new TaskOwnership({ now: () => 0 });
    const readAll = createInspect({ unknownMethods: 'deny', tasks, auditArguments: true });
    const readSome = createInspect({ unknownMethods: 'deny', tasks, auditArguments: false });
    const decide = (inspect: typeof readAll, body: string): unknown => {
      const ctx = {
        req: { rawHeaders: [] },
        principal,
        calls: [],
        messages: undefined,
        batch: false,
      } as unknown as RequestContext;
      try {
        const r = inspect(ctx, Buffer.from(body));
        return {
          meaning: JSON.parse(r.bytes.toString('utf8')),
          answer: r.answer,
          plans: r.plans && [...r.plans],
          calls: ctx.calls,
        };
      } catch (err) {
        if (!isGatewayError(err)) throw err;
        return { code: err.code, message: err.message };
      }
    };
    const bodies = [
      `{"name":"echo","x":{"name":"rm","task":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}},"pad":${PAD}}`,
      `{"name":"echo","Task":{"ttl":1},"pad":${PAD}}`,
      `{"name":"echo","task_id":["t"],"pad":${PAD}}`,
      `{"name":"echo","meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"pad":${PAD}}`,
      `{"name":"echo","NAME":["rm"],"pad":${PAD}}`,
      `{"name":"echo","na\u017fme":{},"pad":${PAD}}`,
      `{"name":"echo","ta\u017fk":{},"pad":${PAD}}`,
      `{"name":"echo","t\\u0061sk":{"ttl":1},"pad":${PAD}}`,
      `{"name":"echo","\\u005fmeta":{"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}},"pad":${PAD}}`,
      `{"name":"echo","_meta":{"IO.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}},"k":${PAD}}}`,
      `{"name":"echo","_meta":["x"],"pad":${PAD}}`,
      `{"name":"echo","_meta":"2026-07-28","pad":${PAD}}`,
      `{"name":"echo","_meta":{"k":${PAD}},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`,
      `{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"_meta":{"k":${PAD}}}`,
      `{"name":"echo","task ":{},"\ufefftask":{},"pad":${PAD}}`,
      `{"name":"echo","x":{"k":1,"k":2},"pad":${PAD},"task":1e400}`,
      `{"name":"echo","x":[1e400,12345678901234567890,-0],"pad":${PAD},"task":12345678901234567890,"name":"echo"}`,
    ];
    for (const params of bodies) {
      for (const body of [
        call(params),
        call(params).replace('"params"', `"params":{"name":"rm","y":${PAD}},"params"`),
        `[${call(params)},${call('{"name":"echo"}', '2')}]`,
      ]) {
        assert.deepStrictEqual(decide(readSome, body), decide(readAll, body), params.slice(0, 80));
      }
    }
  });

  it('held: __proto__ spelled with escapes, control bytes and invalid UTF-8 inside a part', () => {
    for (const part of [
      `{"\\u005f_proto__":{"name":"rm"}}`,
      `[{"__pro\\u0074o__":1}]`,
      `{"a\u0001":1}`,
      `{"a":"b\u0001"}`,
    ]) {
      const got = alike(call(`{"name":"echo","x":${part},"pad":${PAD}}`), SKELETON_FROM);
      assert.ok('code' in got, part);
    }
    const text = call(`{"name":"echo","x":{"k\xff":1},"pad":${PAD}}`);
    const bad = Buffer.from(text, 'latin1');
    assert.ok('code' in alike(bad, SKELETON_FROM));
  });

  it("held: keys and strings of every length around the pre-scan's plain-string limits, at each alignment (property)", () => {
    const piece = fc.tuple(
      fc.integer({ min: 0, max: 200 }),
      fc.constantFrom('', '\\"', '\\u0041', '\\n', ':', 'A'),
    );
    const strs = fc
      .array(piece, { minLength: 1, maxLength: 30 })
      .map((ss) =>
        ss
          .map(([n, e], i) =>
            i % 3 === 0
              ? `{"${'k'.repeat(n)}${e}":"${'v'.repeat(n % 70)}","${'k'.repeat(n)}":1}`
              : `"${'s'.repeat(n)}${e}"`,
          )
          .join(','),
      );
    const key = fc.constantFrom(
      'x',
      'cursor',
      'Name',
      'n\\u0061me',
      'name',
      'task',
      'k',
      'progressToken',
      '_meta',
    );
    const val = fc.oneof(
      fc.constantFrom(
        '"echo"',
        '"rm"',
        '1e400',
        '{}',
        `"${LONG}"`,
        '{"a":1,"a":2}',
        '{"a":1,"A":2}',
        '"\\u00000"',
      ),
      strs.map((s) => `[${s}]`),
    );
    const members = fc
      .array(fc.tuple(key, val), { minLength: 1, maxLength: 5 })
      .map((ms) => ms.map(([k, v]) => `"${k}":${v}`).join(','));
    const body = fc.tuple(members, fc.option(members), fc.boolean()).map(([p, meta, batch]) => {
      const m = call(`{${meta === null ? p : `${p},"_meta":{${meta}}`}}`);
      return batch ? `[${m},${call(`{${p}}`, '2')}]` : m;
    });
    const PIECE = fc.constantFrom(
      '"',
      '\\',
      '{',
      '}',
      ',',
      ':',
      ' ',
      '"x":[1],',
      '"name":"rm",',
      '"A":1,',
      '\\u0000',
    );
    fc.assert(
      fc.property(
        body,
        fc.nat(3),
        fc.array(fc.tuple(fc.nat(), fc.nat(2), PIECE), { maxLength: 2 }),
        (t, offset, edits) => {
          const text = applyEdits(t, edits);
          const size = Buffer.byteLength(text);
          const memory = Buffer.alloc(size + 4);
          memory.write(text, offset);
          const b = memory.subarray(offset, offset + size);
          // The class of the second hole above is left to it.
          const whole = outcome(b, Infinity);
          if ('code' in whole && !('code' in outcome(b, 0)) && text.includes('\\\\')) return;
          alike(b, 0);
        },
      ),
      { numRuns: 1500 },
    );
  });
});

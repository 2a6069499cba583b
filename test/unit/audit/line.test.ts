import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { auditRecordOptions, buildAuditRecord, MAX_NAME, NO_ARGUMENTS } from '../../../src/audit/record.ts';
import type { AuditRecordOptions } from '../../../src/audit/record.ts';
import { writeAuditLine } from '../../../src/audit/line.ts';
import { LineBuffer } from '../../../src/audit/line-buffer.ts';
import type { CallRecord, Decision, RequestContext } from '../../../src/pipeline/context.ts';
import type { Principal } from '../../../src/auth/principal.ts';
import type { ErrorCode } from '../../../src/jsonrpc/errors.ts';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';
import type { PinReport } from '../../../src/pinning/pins.ts';
import { ALLOW_ALL } from '../../../src/policy/grants.ts';
import { fakeContext } from './fake-context.ts';

/** The line as the writer gets it, or the error writing it threw. */
function written(
  ctx: RequestContext,
  now: number,
  mono: number,
  options: AuditRecordOptions,
): string | Error {
  const out = new LineBuffer();
  try {
    out.append({ writeTo: (sink) => writeAuditLine(sink, ctx, now, mono, options) });
  } catch (err) {
    // Nothing of a line that threw is kept.
    assert.equal(out.take(), undefined);
    return err as Error;
  }
  return out.take()!.toString('utf8');
}

/**
 * What the line must be: JSON.stringify of the record, with the three line breaks JSON.stringify
 * leaves as they are escaped, and its newline.
 */
function expected(
  ctx: RequestContext,
  now: number,
  mono: number,
  options: AuditRecordOptions,
): string | Error {
  try {
    return escapeBreaks(JSON.stringify(buildAuditRecord(ctx, now, mono, options))) + '\n';
  } catch (err) {
    return err as Error;
  }
}

function escapeBreaks(json: string): string {
  return json.replace(/[\u0085\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function same(ctx: RequestContext, now: number, mono: number, options: AuditRecordOptions = NO_ARGUMENTS) {
  const want = expected(ctx, now, mono, options);
  const got = written(ctx, now, mono, options);
  if (want instanceof Error) {
    assert.ok(got instanceof Error, `expected ${want.name}, got a line`);
    assert.equal(got.name, want.name);
  } else assert.equal(got, want);
}

// Strings of any UTF-16 units: quotes, backslashes, control characters, DEL, non-ASCII, lone
// surrogates; and plain ones, the common case.
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('a', '"', '\u0085', '\u2028', '\u2029', '\u00e9'), maxLength: 8 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
  fc.stringMatching(/^[a-z0-9_./-]{0,30}$/),
  fc.constantFrom('"', '\\', '\u2028', '\ud800', 'a\udc00b', '\u007f', '\u0000', '</script>'),
);
const longText = fc.oneof(
  text,
  fc.tuple(fc.integer({ min: MAX_NAME - 2, max: 1100 }), text).map(([n, t]) => 'x'.repeat(n) + t),
  // A surrogate pair cut by the clip at MAX_NAME: the rest is a lone surrogate.
  fc.integer({ min: MAX_NAME - 2, max: MAX_NAME + 1 }).map((n) => 'y'.repeat(n) + '😀😀'),
);
const number = fc.oneof(
  fc.integer({ min: 0, max: 100_000 }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double(),
  fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e21, 2 ** 53, 1e-7, 0.1 + 0.2),
);
const millis = fc.oneof(
  fc.double({ min: 0, max: 100_000, noNaN: true }),
  fc.integer({ min: 0, max: 10_000_000 }).map((k) => k / 1000),
  fc.double({ min: 1e11, max: 1e13, noNaN: true }),
  fc.double(),
  fc.constantFrom(0, -0, -0.0004, 0.0004999, 0.0005, 999_999_999_999.9995, 1e12, 1e15, 1e21),
);
const decision = fc.constantFrom<Decision>(
  'allow',
  'deny',
  'rate_limited',
  'unauthenticated',
  'invalid',
  'upstream_error',
  'aborted',
);
const reason = fc.option(
  fc.constantFrom<ErrorCode>('ERR_TOOL_DENIED', 'ERR_RATE_LIMITED', 'ERR_AUTH_MISSING', 'ERR_CLIENT_ABORTED'),
  { nil: undefined },
);
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const id = fc.oneof(longText, number, fc.constant(null));

const principal: fc.Arbitrary<Principal | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.record({ name: text, keyId: optional(text) }).map(({ name, keyId }): Principal => ({
    kind: 'key',
    name,
    keyId,
    bindingId: 'b',
    grants: ALLOW_ALL,
    limits: undefined,
  })),
  fc
    .record({ name: longText, clientId: optional(longText), grant: optional(text) })
    .map(({ name, clientId, grant }): Principal => ({
      kind: 'oauth',
      name,
      keyId: undefined,
      bindingId: 'b',
      grants: ALLOW_ALL,
      limits: undefined,
      clientId,
      grant,
    })),
  fc.constant<Principal>({
    kind: 'anonymous',
    name: 'anonymous',
    keyId: undefined,
    bindingId: 'a',
    grants: ALLOW_ALL,
    limits: undefined,
  }),
);

const call: fc.Arbitrary<CallRecord> = fc
  .record({
    rpc_method: optional(longText),
    rpc_id: id,
    tool: optional(longText),
    prompt: optional(longText),
    resource: optional(longText),
    decision,
    reason,
  })
  .map((c) => {
    // As the pipeline makes them: optional fields absent rather than undefined.
    const out: CallRecord = { rpc_method: c.rpc_method, rpc_id: c.rpc_id, decision: c.decision };
    if (c.tool !== undefined) out.tool = c.tool;
    if (c.prompt !== undefined) out.prompt = c.prompt;
    if (c.resource !== undefined) out.resource = c.resource;
    if (c.reason !== undefined) out.reason = c.reason;
    return out;
  });

const message: fc.Arbitrary<JsonRpcMessage> = fc
  .record({
    id: fc.oneof(text, fc.integer()),
    method: fc.oneof(fc.constant('tools/call'), text),
    args: fc.jsonValue({ maxDepth: 3 }),
  })
  .map(
    ({ id, method, args }) =>
      ({ jsonrpc: '2.0', id, method, params: { name: 't', arguments: args } }) as JsonRpcMessage,
  );

const pinReport: fc.Arbitrary<PinReport> = fc.record({
  kind: fc.constantFrom('tools' as const, 'prompts' as const),
  name: longText,
  change: fc.constantFrom('new' as const, 'changed' as const, 'unreadable' as const),
  fields: fc.array(text, { maxLength: 3 }),
  sha256: fc.constant(undefined),
});

const context: fc.Arbitrary<RequestContext> = fc
  .record({
    requestId: text,
    httpMethod: optional(fc.constantFrom('POST', 'GET', 'DELETE')),
    userAgent: optional(longText),
    clientIp: fc.oneof(fc.constant(''), fc.constant('127.0.0.1'), text),
    principal,
    batch: fc.boolean(),
    calls: fc.array(call, { maxLength: 3 }),
    messages: optional(fc.array(message, { maxLength: 3 })),
    decision,
    reason,
    status: fc.oneof(fc.constantFrom(200, 202, 403, 429, 499, 502), number),
    startedMono: fc.double({ min: 0, max: 1e7, noNaN: true }),
    upstreamMs: optional(millis),
    bytesIn: number,
    bytesOut: number,
    session: optional(text),
    protocolVersion: optional(longText),
    aborted: fc.boolean(),
    eventsFiltered: optional(number),
    rootsWithheld: optional(fc.record({ count: fc.nat(), uris: fc.array(longText, { maxLength: 3 }) })),
    pinReports: optional(fc.array(pinReport, { maxLength: 2 })),
  })
  .map((r) => {
    const ctx = fakeContext({
      requestId: r.requestId,
      clientIp: r.clientIp,
      principal: r.principal,
      batch: r.batch,
      calls: r.calls,
      messages: r.messages,
      decision: r.decision,
      reason: r.reason,
      status: r.status,
      startedMono: r.startedMono,
      upstreamMs: r.upstreamMs,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
      session: r.session,
      protocolVersion: r.protocolVersion,
      aborted: r.aborted,
      eventsFiltered: r.eventsFiltered,
      rootsWithheld: r.rootsWithheld,
      pinReports: r.pinReports,
    });
    const headers = { ...ctx.req.headers, 'user-agent': r.userAgent };
    Object.assign(ctx.req, { method: r.httpMethod, headers });
    return ctx;
  });

const now = fc.oneof(
  fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2040, 0, 1) }),
  fc.integer({ min: -8.64e15, max: 8.64e15 }),
  fc.constantFrom(8.64e15 + 1, 0.5, NaN, -1),
);

describe('the audit line written in place', () => {
  it('is JSON.stringify of the record and a newline, byte for byte (property)', () => {
    fc.assert(
      fc.property(context, now, millis, (ctx, t, elapsed) => same(ctx, t, ctx.startedMono + elapsed)),
      { numRuns: 3000 },
    );
  });

  it('with log_arguments: the arguments are JSON.stringify of the sanitized copy (property)', () => {
    const options = auditRecordOptions({ log_arguments: true, redact: ['secret'] });
    fc.assert(
      fc.property(context, now, (ctx, t) => same(ctx, t, ctx.startedMono + 1.5, options)),
      { numRuns: 1000 },
    );
  });

  it('the pipeline scenario: an API key, one allowed tools/call', () => {
    const ctx = fakeContext({
      requestId: '3078f0a3-be11-4e91-ae8b-1817fa3e091f',
      calls: [{ rpc_method: 'tools/call', rpc_id: 7, tool: 'search', decision: 'allow' }],
      upstreamMs: 0.8123,
      bytesIn: 110,
      bytesOut: 98,
      session: 's-3f2a9c1b',
      protocolVersion: '2025-06-18',
    });
    const line = written(ctx, Date.UTC(2026, 11, 3, 7, 0, 0, 45), 1234.5678, NO_ARGUMENTS);
    assert.equal(
      line,
      '{"time":"2026-12-03T07:00:00.045Z","request_id":"3078f0a3-be11-4e91-ae8b-1817fa3e091f",' +
        '"key":"alice","key_id":"k1a2b3c4","client_ip":"10.1.2.3","http_method":"POST",' +
        '"rpc_method":"tools/call","rpc_id":7,"tool":"search","decision":"allow","status":200,' +
        '"latency_ms":234.568,"upstream_ms":0.812,"bytes_in":110,"bytes_out":98,"session":"s-3f2a9c1b",' +
        '"protocol_version":"2025-06-18","aborted":false,"user_agent":"test-client/1.0"}\n',
    );
    same(ctx, Date.UTC(2026, 11, 3, 7, 0, 0, 45), 1234.5678);
  });

  it('a client string cannot start a second line or a field of its own', () => {
    const forged = 'x","decision":"allow"}\n{"request_id":"forged';
    const ctx = fakeContext({
      calls: [{ rpc_method: forged, rpc_id: forged, tool: forged + '\u2028\ud800', decision: 'deny' }],
      protocolVersion: forged,
    });
    const line = written(ctx, Date.UTC(2026, 0, 1), 1001, NO_ARGUMENTS) as string;
    assert.equal(line.indexOf('\n'), line.length - 1);
    // The lone surrogate is written as U+FFFD (clip.ts): strict JSON readers refuse a line holding one.
    assert.equal((JSON.parse(line) as { tool: string }).tool, forged + '\u2028\ufffd');
    same(ctx, Date.UTC(2026, 0, 1), 1001);
  });
});

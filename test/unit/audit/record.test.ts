import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { auditRecordOptions, buildAuditRecord, MAX_NAME, NO_ARGUMENTS } from '../../../src/audit/record.ts';
import type { AuditRecordOptions } from '../../../src/audit/record.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';
import { fakeContext, keyPrincipal, oauthPrincipal, SECRETS } from './fake-context.ts';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 6, 0);

/** The record as it appears in the log: one JSON line, parsed back. */
function line(
  ctx: RequestContext,
  mono = 1012.3456,
  options: AuditRecordOptions = NO_ARGUMENTS,
): Record<string, unknown> {
  const text = JSON.stringify(buildAuditRecord(ctx, NOW, mono, options));
  assert.ok(!text.includes('\n'), 'one line');
  return JSON.parse(text) as Record<string, unknown>;
}

const toolCall = (id: number, name: string, args?: unknown): JsonRpcMessage => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: args === undefined ? { name } : { name, arguments: args },
});

describe('buildAuditRecord', () => {
  it('allow: a tools/call with every documented field', () => {
    const ctx = fakeContext({
      messages: [toolCall(7, 'echo')],
      calls: [{ rpc_method: 'tools/call', rpc_id: 7, tool: 'echo', decision: 'allow' }],
      status: 200,
      upstreamMs: 3.14159,
      bytesIn: 120,
      bytesOut: 345,
      session: 's-7f3a',
      protocolVersion: '2025-06-18',
    });
    assert.deepEqual(line(ctx), {
      time: '2026-01-02T03:04:06.000Z',
      request_id: 'req-0001',
      key: 'alice',
      key_id: 'k1a2b3c4',
      client_ip: '10.1.2.3',
      http_method: 'POST',
      rpc_method: 'tools/call',
      rpc_id: 7,
      tool: 'echo',
      decision: 'allow',
      status: 200,
      latency_ms: 12.346,
      upstream_ms: 3.142,
      bytes_in: 120,
      bytes_out: 345,
      session: 's-7f3a',
      protocol_version: '2025-06-18',
      aborted: false,
      user_agent: 'test-client/1.0',
    });
  });

  it('keeps the documented field order', () => {
    const ctx = fakeContext({
      calls: [
        { rpc_method: 'tools/call', rpc_id: 1, tool: 't', decision: 'deny', reason: 'ERR_TOOL_DENIED' },
      ],
      upstreamMs: 1,
      session: 's',
      protocolVersion: 'v',
    });
    assert.deepEqual(Object.keys(line(ctx)), [
      'time',
      'request_id',
      'key',
      'key_id',
      'client_ip',
      'http_method',
      'rpc_method',
      'rpc_id',
      'tool',
      'decision',
      'reason',
      'status',
      'latency_ms',
      'upstream_ms',
      'bytes_in',
      'bytes_out',
      'session',
      'protocol_version',
      'aborted',
      'user_agent',
    ]);
  });

  it('deny: the call denial shows at the top level with its reason', () => {
    const ctx = fakeContext({
      messages: [toolCall(8, 'rm_rf')],
      calls: [
        { rpc_method: 'tools/call', rpc_id: 8, tool: 'rm_rf', decision: 'deny', reason: 'ERR_TOOL_DENIED' },
      ],
    });
    const l = line(ctx);
    assert.equal(l.decision, 'deny');
    assert.equal(l.reason, 'ERR_TOOL_DENIED');
    assert.equal(l.tool, 'rm_rf');
    assert.equal('upstream_ms' in l, false, 'absent fields are omitted, not null');
  });

  it('prompt and resource calls use their own field', () => {
    const p = line(
      fakeContext({
        calls: [{ rpc_method: 'prompts/get', rpc_id: 1, prompt: 'summarise', decision: 'allow' }],
      }),
    );
    assert.equal(p.prompt, 'summarise');
    assert.equal('tool' in p, false);
    const r = line(
      fakeContext({
        calls: [{ rpc_method: 'resources/read', rpc_id: 2, resource: 'file:///etc/motd', decision: 'allow' }],
      }),
    );
    assert.equal(r.resource, 'file:///etc/motd');
    assert.equal('tool' in r, false);
  });

  it('rate_limited: request-level decision and reason, call still named', () => {
    const ctx = fakeContext({
      messages: [toolCall(9, 'search')],
      calls: [{ rpc_method: 'tools/call', rpc_id: 9, tool: 'search', decision: 'allow' }],
      decision: 'rate_limited',
      reason: 'ERR_RATE_LIMITED',
      status: 429,
    });
    const l = line(ctx);
    assert.equal(l.decision, 'rate_limited');
    assert.equal(l.reason, 'ERR_RATE_LIMITED');
    assert.equal(l.status, 429);
    assert.equal(l.tool, 'search');
  });

  it('unauthenticated: no principal fields, no message fields', () => {
    const ctx = fakeContext({
      principal: undefined,
      decision: 'unauthenticated',
      reason: 'ERR_AUTH_UNKNOWN_KEY',
      status: 401,
    });
    const l = line(ctx);
    assert.equal(l.decision, 'unauthenticated');
    assert.equal(l.reason, 'ERR_AUTH_UNKNOWN_KEY');
    for (const absent of ['key', 'key_id', 'sub', 'rpc_method', 'rpc_id', 'tool', 'calls']) {
      assert.equal(absent in l, false, absent);
    }
  });

  it('oauth principal: sub, not key', () => {
    const l = line(fakeContext({ principal: oauthPrincipal('user-42@example.com') }));
    assert.equal(l.sub, 'user-42@example.com');
    assert.equal('key' in l, false);
    assert.equal('key_id' in l, false);
  });

  it('invalid: parse error, nothing parsed', () => {
    const l = line(fakeContext({ decision: 'invalid', reason: 'ERR_PARSE', status: 400, bytesIn: 17 }));
    assert.equal(l.decision, 'invalid');
    assert.equal(l.reason, 'ERR_PARSE');
    assert.equal(l.bytes_in, 17);
    assert.equal('rpc_method' in l, false);
  });

  it('invalid after parsing: the method still shows (from the parsed message)', () => {
    const ctx = fakeContext({
      messages: [{ jsonrpc: '2.0', id: 'abc', method: 'bogus/thing' }],
      decision: 'invalid',
      reason: 'ERR_HEADER_MISMATCH',
      status: 400,
    });
    const l = line(ctx);
    assert.equal(l.rpc_method, 'bogus/thing');
    assert.equal(l.rpc_id, 'abc');
  });

  it('upstream_error: the request outcome wins over the allowed call', () => {
    const ctx = fakeContext({
      messages: [toolCall(10, 'echo')],
      calls: [{ rpc_method: 'tools/call', rpc_id: 10, tool: 'echo', decision: 'allow' }],
      decision: 'upstream_error',
      reason: 'ERR_UPSTREAM_UNAVAILABLE',
      status: 502,
      upstreamMs: undefined,
    });
    const l = line(ctx);
    assert.equal(l.decision, 'upstream_error');
    assert.equal(l.reason, 'ERR_UPSTREAM_UNAVAILABLE');
    assert.equal(l.status, 502);
  });

  it('aborted: flagged, status 499', () => {
    const ctx = fakeContext(
      { aborted: true, status: 499, reason: 'ERR_CLIENT_ABORTED', upstreamMs: 0.5, bytesOut: 10 },
      'GET',
    );
    const l = line(ctx, 61_000.0004);
    assert.equal(l.aborted, true);
    assert.equal(l.status, 499);
    assert.equal(l.http_method, 'GET');
    assert.equal(l.latency_ms, 60_000);
    assert.equal(l.reason, 'ERR_CLIENT_ABORTED');
  });

  it('batch: one line with a calls array, no single-call fields', () => {
    const ctx = fakeContext({
      batch: true,
      messages: [
        toolCall(1, 'echo'),
        toolCall(2, 'rm_rf'),
        { jsonrpc: '2.0', method: 'notifications/initialized' },
      ],
      calls: [
        { rpc_method: 'tools/call', rpc_id: 1, tool: 'echo', decision: 'allow' },
        { rpc_method: 'tools/call', rpc_id: 2, tool: 'rm_rf', decision: 'deny', reason: 'ERR_TOOL_DENIED' },
        { rpc_method: 'notifications/initialized', rpc_id: null, decision: 'allow' },
      ],
      decision: 'deny',
      reason: 'ERR_BATCH_DENIED',
      status: 403,
    });
    const l = line(ctx);
    assert.equal(l.decision, 'deny');
    assert.equal(l.reason, 'ERR_BATCH_DENIED');
    for (const absent of ['rpc_method', 'rpc_id', 'tool']) assert.equal(absent in l, false, absent);
    assert.deepEqual(l.calls, [
      { rpc_method: 'tools/call', rpc_id: 1, tool: 'echo', decision: 'allow' },
      { rpc_method: 'tools/call', rpc_id: 2, tool: 'rm_rf', decision: 'deny', reason: 'ERR_TOOL_DENIED' },
      { rpc_method: 'notifications/initialized', decision: 'allow' },
    ]);
  });

  it('failed before: a batch the pipeline stopped before judging: calls come from the parsed messages, with the request\u2019s decision (they said allow)', () => {
    const ctx = fakeContext({
      batch: true,
      messages: [toolCall(1, 'echo'), { jsonrpc: '2.0', id: 2, method: 'tools/list' }],
      decision: 'rate_limited',
      reason: 'ERR_RATE_LIMITED',
      status: 429,
    });
    assert.deepEqual(line(ctx).calls, [
      { rpc_method: 'tools/call', rpc_id: 1, decision: 'rate_limited', reason: 'ERR_RATE_LIMITED' },
      { rpc_method: 'tools/list', rpc_id: 2, decision: 'rate_limited', reason: 'ERR_RATE_LIMITED' },
    ]);
  });

  it('rounds latencies to 0.001 ms', () => {
    const l = line(fakeContext({ upstreamMs: 0.00049 }), 1000.0017);
    assert.equal(l.latency_ms, 0.002);
    assert.equal(l.upstream_ms, 0);
  });

  it('clips oversized client-supplied names and keeps one line', () => {
    const long = 'x'.repeat(100_000) + '\n{"forged":true}';
    const ctx = fakeContext({
      messages: [{ jsonrpc: '2.0', id: long, method: long }],
      calls: [{ rpc_method: long, rpc_id: long, tool: long, decision: 'deny', reason: 'ERR_METHOD_DENIED' }],
      protocolVersion: long,
    });
    const text = JSON.stringify(buildAuditRecord(ctx, NOW, 1001, NO_ARGUMENTS));
    assert.ok(text.length < 3 * MAX_NAME + 2000, `line is ${text.length} chars`);
    assert.equal(text.split('\n').length, 1);
    const l = JSON.parse(text) as Record<string, string>;
    assert.equal(l.rpc_method!.length, MAX_NAME + 1);
  });

  it('tool arguments are off by default', () => {
    const ctx = fakeContext({
      messages: [toolCall(1, 'echo', { text: 'hello' })],
      calls: [{ rpc_method: 'tools/call', rpc_id: 1, tool: 'echo', decision: 'allow' }],
    });
    assert.equal('arguments' in line(ctx), false);
  });

  it('log_arguments: tools/call arguments, redacted by name at any depth, case-insensitively', () => {
    const options = auditRecordOptions({ log_arguments: true, redact: ['password', 'apiKey', 'token'] });
    const ctx = fakeContext({
      messages: [
        toolCall(1, 'deploy', {
          target: 'prod',
          PASSWORD: 'hunter2',
          nested: { ApiKey: 'ak-123', list: [{ token: 'tk-9', keep: 1 }] },
          token: { value: 'obj-secret' },
        }),
      ],
      calls: [{ rpc_method: 'tools/call', rpc_id: 1, tool: 'deploy', decision: 'allow' }],
    });
    const l = line(ctx, 1001, options);
    assert.deepEqual(l.arguments, {
      target: 'prod',
      PASSWORD: '[redacted]',
      nested: { ApiKey: '[redacted]', list: [{ token: '[redacted]', keep: 1 }] },
      token: '[redacted]',
    });
    const text = JSON.stringify(l);
    for (const secret of ['hunter2', 'ak-123', 'tk-9', 'obj-secret'])
      assert.ok(!text.includes(secret), secret);
  });

  it('log_arguments in a batch: per call, only for tool calls', () => {
    const options = auditRecordOptions({ log_arguments: true, redact: ['secret'] });
    const ctx = fakeContext({
      batch: true,
      messages: [
        toolCall(1, 'a', { q: 1, secret: 's' }),
        {
          jsonrpc: '2.0',
          id: 2,
          method: 'prompts/get',
          params: { name: 'p', arguments: { x: 'not a tool' } },
        },
      ],
      calls: [
        { rpc_method: 'tools/call', rpc_id: 1, tool: 'a', decision: 'allow' },
        { rpc_method: 'prompts/get', rpc_id: 2, prompt: 'p', decision: 'allow' },
      ],
    });
    const calls = line(ctx, 1001, options).calls as Record<string, unknown>[];
    assert.deepEqual(calls[0]!.arguments, { q: 1, secret: '[redacted]' });
    assert.equal('arguments' in calls[1]!, false);
  });

  it('never contains Authorization, X-API-Key or Cookie values, whatever the outcome', () => {
    const options = auditRecordOptions({ log_arguments: true, redact: [] });
    const outcomes: Partial<RequestContext>[] = [
      {},
      { decision: 'unauthenticated', reason: 'ERR_AUTH_UNKNOWN_KEY', status: 401, principal: undefined },
      { decision: 'deny', reason: 'ERR_TOOL_DENIED' },
      { decision: 'rate_limited', reason: 'ERR_RATE_LIMITED', status: 429 },
      { decision: 'invalid', reason: 'ERR_PARSE', status: 400 },
      { decision: 'upstream_error', reason: 'ERR_UPSTREAM_TIMEOUT', status: 504 },
      { aborted: true, status: 499 },
      {
        batch: true,
        messages: [toolCall(1, 'echo', { a: 1 })],
        calls: [{ rpc_method: 'tools/call', rpc_id: 1, tool: 'echo', decision: 'allow' }],
      },
      {
        principal: oauthPrincipal(),
        messages: [toolCall(1, 'echo', { a: 1 })],
        calls: [{ rpc_method: 'tools/call', rpc_id: 1, tool: 'echo', decision: 'allow' }],
      },
    ];
    for (const overrides of outcomes) {
      for (const method of ['POST', 'GET', 'DELETE']) {
        const text = JSON.stringify(buildAuditRecord(fakeContext(overrides, method), NOW, 1001, options));
        for (const secret of Object.values(SECRETS)) {
          assert.ok(!text.includes(secret), `${secret} leaked in ${text}`);
          // Not even a fragment of it.
          assert.ok(!text.includes(secret.slice(7, 20)), `fragment of ${secret} leaked`);
        }
      }
    }
  });

  it('a key principal with an odd label is logged as configured, key id is the hash prefix', () => {
    const l = line(fakeContext({ principal: keyPrincipal('ci.bot@team-a', 'deadbeef') }));
    assert.equal(l.key, 'ci.bot@team-a');
    assert.equal(l.key_id, 'deadbeef');
  });
});

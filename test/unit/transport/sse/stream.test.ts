import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createStreamRewriter } from '../../../../src/transport/sse/stream.ts';
import type { StreamHandlers } from '../../../../src/transport/sse/stream.ts';
import { GatewayError } from '../../../../src/jsonrpc/errors.ts';
import { BufferBudget } from '../../../../src/proxy/body-buffer.ts';

function harness(overrides: Partial<StreamHandlers> = {}) {
  const seen: string[] = [];
  let filtered = 0;
  const rewriter = createStreamRewriter({
    onEndpoint: (data) => `/gw?session=for(${data})`,
    onMessage: (data) => {
      seen.push(data);
      return data.includes('drop') ? undefined : data;
    },
    onFiltered: () => void filtered++,
    ...overrides,
  });
  return {
    run(chunks: string[]): string {
      let out = '';
      for (const c of chunks) for (const b of rewriter.push(Buffer.from(c))) out += b.toString();
      for (const b of rewriter.end()) out += b.toString();
      return out;
    },
    seen,
    filtered: () => filtered,
  };
}

describe('HTTP+SSE stream rewriter', () => {
  it('replaces the endpoint and passes message events as event: and data: lines only', () => {
    const h = harness();
    const out = h.run([
      'event: endpoint\r\ndata: /message?sessionId=1\r\n\r\n',
      'event: message\nid: 7\nretry: 10\ndata: {"a":1}\n\n',
      'data: {"b":2}\n\n',
    ]);
    assert.equal(
      out,
      'event: endpoint\ndata: /gw?session=for(/message?sessionId=1)\n\n' +
        'event: message\ndata: {"a":1}\n\n' +
        'event: message\ndata: {"b":2}\n\n',
    );
    assert.equal(h.filtered(), 0);
  });

  it('joins multi-line data and keeps it multi-line', () => {
    const h = harness();
    const out = h.run(['data: {\ndata:   "a": 1\ndata: }\n\n']);
    assert.deepEqual(h.seen, ['{\n  "a": 1\n}']);
    assert.equal(out, 'event: message\ndata: {\ndata:   "a": 1\ndata: }\n\n');
  });

  it('drops comments silently, and counts events it drops: other names, refused data, unfinished', () => {
    const h = harness();
    const out = h.run([
      ': hello\n\n',
      'event: ping\ndata: {}\n\n',
      'event: custom\n\n',
      'data: drop me\n\n',
      'data: {"kept":1}\n\n',
      'data: {"unfinished"',
    ]);
    assert.equal(out, 'event: message\ndata: {"kept":1}\n\n');
    assert.equal(h.filtered(), 4);
  });

  it('security: ends the stream on an endpoint it cannot take over', () => {
    const h = harness({ onEndpoint: () => undefined });
    assert.throws(
      () => h.run(['event: endpoint\ndata: http://elsewhere/x\n\n']),
      (err: unknown) => err instanceof GatewayError && err.code === 'ERR_UPSTREAM_PROTOCOL',
    );
  });

  it('refuses an event larger than the limit instead of holding it', () => {
    const rewriter = createStreamRewriter(
      { onEndpoint: () => '', onMessage: (d) => d, onFiltered: () => {} },
      64,
    );
    assert.throws(
      () => rewriter.push(Buffer.from(`data: ${'x'.repeat(100)}`)),
      (err: unknown) => err instanceof GatewayError && err.code === 'ERR_UPSTREAM_PROTOCOL',
    );
  });

  it('gives the same output however the stream is cut into chunks', () => {
    const stream =
      'event: endpoint\r\ndata: /m?s=1\r\n\r\n: c\n\ndata: {"x":\ndata: 1}\n\nevent: ping\ndata: 1\n\ndata: drop\r\rdata: {"y":2}\n\n';
    const whole = harness().run([stream]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 12 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: string[] = [];
        let at = 0;
        for (const p of points) {
          chunks.push(stream.slice(at, p));
          at = p;
        }
        chunks.push(stream.slice(at));
        assert.equal(harness().run(chunks), whole);
      }),
    );
    assert.equal(
      whole,
      'event: endpoint\ndata: /gw?session=for(/m?s=1)\n\nevent: message\ndata: {"x":\ndata: 1}\n\nevent: message\ndata: {"y":2}\n\n',
    );
  });
});

describe('HTTP+SSE stream rewriter: memory', () => {
  it('holds unfinished events against the process-wide budget, and gives it back', () => {
    // The attack: many HTTP+SSE streams, each with a large event arriving slowly, held outside
    // limits.max_buffered_bytes until the process runs out of memory.
    const budget = new BufferBudget(1000);
    const handlers = { onEndpoint: () => '', onMessage: (d: string) => d, onFiltered: () => {} };
    const a = createStreamRewriter(handlers, 64 * 1024, budget);
    const b = createStreamRewriter(handlers, 64 * 1024, budget);
    assert.deepEqual(a.push(Buffer.from(`data: ${'x'.repeat(600)}`)), []);
    assert.ok(budget.used >= 600);
    assert.throws(
      () => b.push(Buffer.from(`data: ${'y'.repeat(600)}`)),
      (err: unknown) => err instanceof GatewayError && err.code === 'ERR_OVERLOADED',
    );
    // The event completes: it is passed on whole, and nothing stays reserved.
    const out = a.push(Buffer.from('\n\n'));
    assert.equal(Buffer.concat(out).toString(), `event: message\ndata: ${'x'.repeat(600)}\n\n`);
    assert.equal(budget.used, 0);
    a.push(Buffer.from('data: partial'));
    assert.ok(budget.used > 0);
    a.release();
    assert.equal(budget.used, 0);
  });
});

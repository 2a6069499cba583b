import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SseParser, parseBlock, serializeEvent } from '../../../src/proxy/sse.ts';
import type { SseEvent } from '../../../src/proxy/sse.ts';

/** Feeds `input` to a parser cut at the given offsets; returns all blocks, the unfinished one last. */
function parseChunked(input: Buffer, cuts: readonly number[] = []): SseEvent[] {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  let start = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (cut <= start || cut >= input.length) continue;
    events.push(...parser.push(input.subarray(start, cut)));
    start = cut;
  }
  events.push(...parser.push(input.subarray(start)));
  events.push(...parser.end());
  return events;
}

const dispatched = (events: readonly SseEvent[]) =>
  events
    .filter((e) => e.data !== undefined)
    .map(({ data, event, id, retry }) => ({ data, event, id, retry }));

describe('SseParser', () => {
  it('parses data, event, id and retry', () => {
    const events = parseChunked(Buffer.from('event: message\nid: 42\nretry: 1500\ndata: {"a":1}\n\n'));
    assert.deepEqual(dispatched(events), [{ data: '{"a":1}', event: 'message', id: '42', retry: 1500 }]);
  });

  it('joins multi-line data with LF', () => {
    const events = parseChunked(Buffer.from('data: {"a":\ndata: 1}\ndata:\n\n'));
    assert.equal(events[0]?.data, '{"a":\n1}\n');
  });

  it('handles LF, CRLF, CR and mixed line endings alike', () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const text = `event: e${eol}data: one${eol}data: two${eol}${eol}data: three${eol}${eol}`;
      assert.deepEqual(
        dispatched(parseChunked(Buffer.from(text))),
        [
          { data: 'one\ntwo', event: 'e', id: undefined, retry: undefined },
          { data: 'three', event: undefined, id: undefined, retry: undefined },
        ],
        JSON.stringify(eol),
      );
    }
    const mixed = parseChunked(Buffer.from('data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r'));
    assert.deepEqual(
      mixed.map((e) => e.data),
      ['a\nb\nc', 'd'],
    );
  });

  it('follows the field rules: one space dropped, no colon, comments, unknown fields, bad id/retry', () => {
    const text = ':comment\ndata:x\ndata:  y\ndata\nfoo: bar\nid: a\u0000b\nretry: 12a\nevent\n\n';
    const [e] = parseChunked(Buffer.from(text));
    assert.deepEqual(
      { data: e?.data, event: e?.event, id: e?.id, retry: e?.retry },
      {
        data: 'x\n y\n',
        event: '',
        id: undefined,
        retry: undefined,
      },
    );
  });

  it('a block without data dispatches nothing, but keeps its bytes', () => {
    const events = parseChunked(Buffer.from(': keepalive\n\nid: 3\n\n'));
    assert.equal(events.length, 2);
    assert.deepEqual(
      events.map((e) => e.data),
      [undefined, undefined],
    );
    assert.equal(events[1]?.id, '3');
    assert.equal(Buffer.concat(events.map((e) => e.raw)).toString(), ': keepalive\n\nid: 3\n\n');
  });

  it('strips a byte order mark at the start of the stream only', () => {
    const events = parseChunked(Buffer.from('\ufeffdata: a\n\n\ufeffdata: b\n\n'));
    assert.equal(events[0]?.data, 'a');
    assert.equal(events[1]?.data, undefined, 'a BOM later is part of the field name');
  });

  it('completes an event as soon as its blank line arrives, even a CR split from its LF', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(Buffer.from('data: a\r')), []);
    const first = parser.push(Buffer.from('\n\r'));
    assert.equal(first.length, 1, 'the CR ends the blank line');
    assert.equal(first[0]?.data, 'a');
    const next = parser.push(Buffer.from('\ndata: b\r\n\r\n'));
    assert.equal(next[0]?.raw.toString(), '\n', 'the LF of that CRLF stands alone');
    assert.equal(next[1]?.data, 'b');
    assert.deepEqual(parser.end(), []);
  });

  it('returns an unfinished block at the end', () => {
    const events = parseChunked(Buffer.from('data: a\n\ndata: partial'));
    assert.equal(events.length, 2);
    assert.equal(events[1]?.data, 'partial');
    assert.equal(events[1]?.raw.toString(), 'data: partial');
  });

  it('splits multi-byte characters anywhere', () => {
    const input = Buffer.from('data: h\u00e9llo \u4e16\u754c \ud83d\ude00\n\n');
    for (let cut = 1; cut < input.length; cut++) {
      assert.equal(parseChunked(input, [cut])[0]?.data, 'h\u00e9llo \u4e16\u754c \ud83d\ude00');
    }
  });
});

/** Random events and the bytes a server might send for them. */
const value = fc.string({
  unit: fc.constantFrom('a', 'b', ' ', ':', '{', '"', '\u00e9', '\u4e16', '\ud83d\ude00'),
  maxLength: 12,
});
const eventArb = fc.record({
  data: fc.option(fc.array(value, { minLength: 1, maxLength: 4 }), { nil: undefined }),
  event: fc.option(value, { nil: undefined }),
  id: fc.option(value, { nil: undefined }),
  retry: fc.option(fc.nat({ max: 100000 }), { nil: undefined }),
  comment: fc.boolean(),
});
const eol = fc.constantFrom('\n', '\r\n', '\r');

const streamArb = fc
  .array(fc.tuple(eventArb, fc.array(eol, { minLength: 8, maxLength: 8 })), { maxLength: 8 })
  .map((list) => {
    let text = '';
    let lastCR = false;
    const expected: {
      data: string;
      event: string | undefined;
      id: string | undefined;
      retry: number | undefined;
    }[] = [];
    for (const [e, eols] of list) {
      let k = 0;
      // A CR ending followed by an LF ending would read as one CRLF: use CRLF there instead.
      const end = () => {
        let e = eols[k++ % eols.length] as string;
        if (lastCR && e === '\n') e = '\r\n';
        lastCR = e === '\r';
        return e;
      };
      if (e.comment) text += `: note${end()}`;
      if (e.event !== undefined) text += `event: ${e.event}${end()}`;
      if (e.id !== undefined) text += `id: ${e.id}${end()}`;
      if (e.retry !== undefined) text += `retry: ${e.retry}${end()}`;
      for (const line of e.data ?? []) text += `data: ${line}${end()}`;
      text += end();
      if (e.data !== undefined) {
        expected.push({ data: e.data.join('\n'), event: e.event, id: e.id, retry: e.retry });
      }
    }
    return { bytes: Buffer.from(text), expected };
  });

describe('SSE framing round trip (property)', () => {
  it('yields the same events and exactly the input bytes, however the stream is cut', () => {
    fc.assert(
      fc.property(
        streamArb,
        fc.array(fc.nat({ max: 400 }), { maxLength: 12 }),
        ({ bytes, expected }, cuts) => {
          const events = parseChunked(bytes, cuts);
          assert.deepEqual(Buffer.concat(events.map((e) => e.raw)), bytes);
          // Each event's fields are its own (id and retry do not carry over in this parser).
          assert.deepEqual(
            dispatched(events).map((e) => e.data),
            expected.map((e) => e.data),
          );
          const withData = events.filter((e) => e.data !== undefined);
          withData.forEach((e, i) => {
            assert.equal(e.event, expected[i]?.event);
            assert.equal(e.id, expected[i]?.id);
            assert.equal(e.retry, expected[i]?.retry);
          });
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('one-byte chunks give the same result as one chunk', () => {
    fc.assert(
      fc.property(streamArb, ({ bytes }) => {
        const whole = parseChunked(bytes);
        const bytewise = parseChunked(
          bytes,
          Array.from({ length: bytes.length }, (_, i) => i),
        );
        assert.deepEqual(dispatched(bytewise), dispatched(whole));
      }),
      { numRuns: 300 },
    );
  });

  it('serializeEvent output parses back to the same fields', () => {
    fc.assert(
      fc.property(eventArb, (e) => {
        const data = e.data?.join('\n');
        const text = serializeEvent({ data, event: e.event, id: e.id, retry: e.retry });
        const parsed = parseBlock(text);
        assert.deepEqual(parsed, { data, event: e.event, id: e.id, retry: e.retry });
        assert.ok(text === '\n' || text.endsWith('\n\n'), 'ends with a blank line');
      }),
      { numRuns: 1000 },
    );
  });

  it('serializeEvent splits data on any line ending and refuses CR/LF in event or id', () => {
    assert.equal(serializeEvent({ data: 'a\r\nb\rc', id: '1' }), 'id: 1\ndata: a\ndata: b\ndata: c\n\n');
    assert.throws(() => serializeEvent({ event: 'a\nb' }), TypeError);
  });
});

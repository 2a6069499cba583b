import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createSseRewriter, DROP } from '../../../src/proxy/sse-rewrite.ts';
import { SseParser } from '../../../src/proxy/sse.ts';
import type { SseEvent } from '../../../src/proxy/sse.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';

function run(
  rewriter: ReturnType<typeof createSseRewriter>,
  chunks: readonly Buffer[],
): { out: Buffer[][]; tail: Buffer[] } {
  const out = chunks.map((c) => rewriter.push(c));
  return { out, tail: rewriter.end() };
}

const all = (r: { out: Buffer[][]; tail: Buffer[] }) =>
  Buffer.concat([...r.out.flat(), ...r.tail]).toString();

function cut(input: Buffer, cuts: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  for (const c of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (c <= start || c >= input.length) continue;
    chunks.push(input.subarray(start, c));
    start = c;
  }
  chunks.push(input.subarray(start));
  return chunks;
}

const upper = (data: string) => (data.includes('"result"') ? data.toUpperCase() : undefined);

describe('createSseRewriter', () => {
  it('passes events through untouched when nothing is rewritten', () => {
    const input = ': hi\r\nevent: message\r\ndata: {"a":1}\r\n\r\nid: 9\ndata: x\n\n';
    assert.equal(
      all(
        run(
          createSseRewriter(() => undefined),
          [Buffer.from(input)],
        ),
      ),
      input,
    );
  });

  it('rewrites the matching event, keeping its event and id fields and its place', () => {
    const input =
      'event: message\ndata: {"method":"notifications/progress"}\n\n' +
      ': comment\n\n' +
      'event: message\nid: 7\ndata: {"id":1,\ndata: "result":{}}\n\n' +
      'data: after\n\n';
    const result = all(run(createSseRewriter(upper), [Buffer.from(input)]));
    assert.equal(
      result,
      'event: message\ndata: {"method":"notifications/progress"}\n\n' +
        ': comment\n\n' +
        'event: message\nid: 7\ndata: {"ID":1,\ndata: "RESULT":{}}\n\n' +
        'data: after\n\n',
    );
  });

  it('sends each event as soon as it is complete, holding only the unfinished one', () => {
    const rewriter = createSseRewriter(() => undefined);
    const first = rewriter.push(Buffer.from('data: one\n\ndata: tw'));
    assert.equal(Buffer.concat(first).toString(), 'data: one\n\n');
    assert.deepEqual(rewriter.push(Buffer.from('o\n')), []);
    const second = rewriter.push(Buffer.from('\ndata: three\n\n'));
    assert.equal(Buffer.concat(second).toString(), 'data: two\n\ndata: three\n\n');
    assert.deepEqual(rewriter.end(), []);
  });

  it('passes untouched events as slices of the input, not copies', () => {
    const chunk = Buffer.from('data: a\n\ndata: b\n\n');
    const out = createSseRewriter(() => undefined).push(chunk);
    assert.equal(out.length, 1);
    assert.equal(out[0]?.buffer, chunk.buffer);
  });

  it('rewrites an event split over many chunks and line endings', () => {
    const input = Buffer.from(
      'event: message\r\nid: 1\r\ndata: {"id":1,"result":\r\ndata: {"tools":[]}}\r\n\r\n',
    );
    for (let i = 1; i < input.length; i++) {
      const text = all(run(createSseRewriter(upper), cut(input, [i])));
      const expected = 'event: message\nid: 1\ndata: {"ID":1,"RESULT":\ndata: {"TOOLS":[]}}\n\n';
      // Cut between the final CR and LF, the event goes out at the CR; the LF follows as an empty line.
      assert.equal(text, i === input.length - 1 ? `${expected}\n` : expected, `cut at ${i}`);
    }
  });

  it('filters an unfinished last event too (a client may not drop it)', () => {
    const text = all(run(createSseRewriter(upper), [Buffer.from('data: x\n\ndata: {"result":1}')]));
    assert.equal(text, 'data: x\n\ndata: {"RESULT":1}\n\n');
    const untouched = all(
      run(
        createSseRewriter(() => undefined),
        [Buffer.from('data: x\n\ndata: partial')],
      ),
    );
    assert.equal(untouched, 'data: x\n\ndata: partial');
  });

  it('refuses an event larger than the limit', () => {
    const rewriter = createSseRewriter(() => undefined, { maxEventBytes: 16 });
    rewriter.push(Buffer.from('data: 0123456'));
    assert.throws(
      () => rewriter.push(Buffer.from('789abcdef')),
      (err: unknown) => isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL',
    );
  });
});

const line = fc.string({
  unit: fc.constantFrom('a', '"', ':', ' ', '{', '}', '\u00e9', '\ud83d\ude00'),
  maxLength: 10,
});
const blockWith = (eols: readonly string[]) =>
  fc
    .tuple(
      fc.constantFrom('data', 'event', 'id', ':', 'retry'),
      fc.array(line, { minLength: 1, maxLength: 3 }),
      fc.constantFrom(...eols),
    )
    .map(
      ([field, lines, eol]) =>
        lines.map((l) => `${field === ':' ? ':' : `${field}: `}${l}${eol}`).join('') + eol,
    );
const streamOf = (eols: readonly string[]) =>
  fc.array(blockWith(eols), { maxLength: 10 }).map((blocks) => Buffer.from(blocks.join('')));
const stream = streamOf(['\n', '\r\n', '\r']);
/** Without lone CRs: a block with data and a line ended by one is written again with LF (below). */
const lfStream = streamOf(['\n', '\r\n']);

describe('createSseRewriter (properties)', () => {
  it('with nothing to rewrite, the output is the input, byte for byte, however it is cut', () => {
    fc.assert(
      fc.property(lfStream, fc.array(fc.nat({ max: 300 }), { maxLength: 10 }), (input, cuts) => {
        // Where each block ends in the whole stream.
        const ends: number[] = [];
        let offset = 0;
        const parser = new SseParser();
        for (const e of parser.push(input)) ends.push((offset += e.raw.length));
        const rewriter = createSseRewriter(() => undefined);
        const out: Buffer[] = [];
        let pushed = 0;
        for (const chunk of cut(input, cuts)) {
          out.push(...rewriter.push(chunk));
          pushed += chunk.length;
          // Exactly the complete blocks have gone out (a block whose blank line ends with a CR
          // is complete at the CR, before its LF arrives, and leaves with that LF: an LF-only
          // client would not end the event at the CR).
          let expected = 0;
          for (const end of ends) {
            if (end <= pushed) expected = end;
            else if (end === pushed + 1 && input[pushed - 1] === 0x0d && input[pushed] === 0x0a)
              expected = pushed + 1;
          }
          assert.equal(Buffer.concat(out).length, expected);
        }
        out.push(...rewriter.end());
        assert.deepEqual(Buffer.concat(out), input);
      }),
      { numRuns: 1000 },
    );
  });

  it('with nothing to rewrite, a block with data and a line ended by a lone CR leaves with LF, the same event', () => {
    fc.assert(
      fc.property(stream, fc.array(fc.nat({ max: 300 }), { maxLength: 10 }), (input, cuts) => {
        const rewriter = createSseRewriter(() => undefined);
        const out = Buffer.concat([...cut(input, cuts).flatMap((c) => rewriter.push(c)), ...rewriter.end()]);
        const parse = (b: Buffer) => {
          const p = new SseParser();
          return [...p.push(b), ...p.end()];
        };
        const fields = (e: SseEvent) => ({ data: e.data, event: e.event, id: e.id, retry: e.retry });
        const events = parse(out);
        const withData = (e: SseEvent) => e.data !== undefined;
        assert.deepEqual(events.filter(withData).map(fields), parse(input).filter(withData).map(fields));
        // (A CR that is a block's last byte may have its LF in the next block.)
        for (const e of events.filter(withData)) assert.doesNotMatch(e.raw.toString(), /\r(?=[^\n])/);
      }),
      { numRuns: 1000 },
    );
  });

  it('rewriting every event yields the same events as rewriting the parsed stream', () => {
    fc.assert(
      fc.property(stream, fc.array(fc.nat({ max: 300 }), { maxLength: 10 }), (input, cuts) => {
        const rewriter = createSseRewriter((d) => `<${d}>`);
        const out = Buffer.concat([...cut(input, cuts).flatMap((c) => rewriter.push(c)), ...rewriter.end()]);
        const parse = (b: Buffer) => {
          const p = new SseParser();
          return [...p.push(b), ...p.end()].filter((e) => e.data !== undefined);
        };
        const expected = parse(input).map((e) => ({ data: `<${e.data}>`, event: e.event, id: e.id }));
        const actual = parse(out).map((e) => ({ data: e.data, event: e.event, id: e.id }));
        assert.deepEqual(actual, expected);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('event ids sealed for the client (eventId option)', () => {
  const seal = (id: string) => `${id}.SEALED`;
  const pass = () => undefined;

  it('writes every block with a non-empty id again, with the sealed id, in any cut', () => {
    const input = Buffer.from(
      'id: a0\ndata: \n\n' +
        'event: message\nid: a1\ndata: {"jsonrpc":"2.0","method":"x"}\n\n' +
        'data: {"no":"id"}\n\n' +
        ': comment\nid:a2\r\ndata: x\r\n\r\n' +
        'idx: not an id\ndata: y\n\n' +
        'id\ndata: z\n\n',
    );
    const expected =
      'id: a0.SEALED\ndata: \n\n' +
      'event: message\nid: a1.SEALED\ndata: {"jsonrpc":"2.0","method":"x"}\n\n' +
      'data: {"no":"id"}\n\n' +
      'id: a2.SEALED\ndata: x\n\n' +
      'idx: not an id\ndata: y\n\n' +
      'id\ndata: z\n\n';
    for (let at = 1; at < input.length; at += 7) {
      const r = run(createSseRewriter(pass, { eventId: seal }), cut(input, [at, at + 3]));
      assert.equal(all(r), expected, `cut at ${at}`);
    }
  });

  it('seals the id of a block whose data is rewritten, and of the first block after a BOM', () => {
    const input = Buffer.from('\ufeffid: b0\ndata: old\n\nid: b1\ndata: old\n\n');
    const r = run(
      createSseRewriter((data) => (data === 'old' ? 'new' : undefined), { eventId: seal }),
      [input],
    );
    assert.equal(all(r), 'id: b0.SEALED\ndata: new\n\nid: b1.SEALED\ndata: new\n\n');
  });

  it('splices the sealed id into a plain block its bytes settle, as the parse would write it', () => {
    // `bytes` settles plain blocks: PASS for data "keep", its own replacement for data "old".
    const bytes = (raw: Buffer) => {
      const text = raw.toString();
      if (text.endsWith('data: keep\n\n')) return null;
      if (text.endsWith('data: old\n\n')) return Buffer.from(text.replace('data: old', 'data: new'));
      return undefined;
    };
    const rewrite = (data: string) => (data === 'old' ? 'new' : undefined);
    const input = Buffer.from(
      'event: message\nid: c1\ndata: keep\n\n' +
        'id: c2\ndata: old\n\n' +
        'event: message\nid: c3\ndata: other\n\n' +
        'id: é.4\ndata: keep\n\n',
    );
    const expected =
      'event: message\nid: c1.SEALED\ndata: keep\n\n' +
      'id: c2.SEALED\ndata: new\n\n' +
      'event: message\nid: c3.SEALED\ndata: other\n\n' +
      'id: é.4.SEALED\ndata: keep\n\n';
    const fast = all(run(createSseRewriter(rewrite, { eventId: seal, bytes }), [input]));
    const parsed = all(run(createSseRewriter(rewrite, { eventId: seal }), [input]));
    assert.equal(fast, expected);
    assert.equal(parsed, expected);
  });

  it('leaves blocks as they are without the option', () => {
    const input = Buffer.from('id: a0\ndata: x\n\n');
    assert.equal(all(run(createSseRewriter(pass), [input])), 'id: a0\ndata: x\n\n');
  });
});

describe('a first block after the characters a BOM read as Latin-1 (ï»¿)', () => {
  // The SDK client's eventsource-parser drops them from the stream's start: the gateway reads the
  // block as that client does and writes it again, so every client reads what was judged.
  for (const [name, prefix] of [
    ['alone', '\u00ef\u00bb\u00bf'],
    ['after a byte order mark', '\ufeff\u00ef\u00bb\u00bf'],
  ] as const) {
    it(`judges its data and writes it without them (${name})`, () => {
      const seen: string[] = [];
      const rewriter = createSseRewriter(
        (data) => (seen.push(data), data === 'secret' ? 'hidden' : undefined),
      );
      const input = Buffer.from(`${prefix}data: secret\n\ndata: later\n\n`);
      assert.equal(all(run(rewriter, [input])), 'data: hidden\n\ndata: later\n\n');
      assert.deepEqual(seen, ['secret', 'later']);
    });
  }
  it('leaves those characters alone after the first block', () => {
    const rewriter = createSseRewriter(() => undefined);
    const input = Buffer.from('data: a\n\n\u00ef\u00bb\u00bfdata: b\n\n');
    assert.equal(all(run(rewriter, [input])), 'data: a\n\n\u00ef\u00bb\u00bfdata: b\n\n');
  });

  it('drops an event rewrite says DROP: its id alone is left (sealed when ids are), nothing without one', () => {
    const drop = (data: string) => (data === 'hidden' ? DROP : undefined);
    const input = 'id: 1\nevent: message\ndata: hidden\n\ndata: hidden\n\nid: 3\ndata: shown\n\n';
    for (const chunks of [[Buffer.from(input)], cut(Buffer.from(input), [5, 20, 33, 40])]) {
      assert.equal(all(run(createSseRewriter(drop), chunks)), 'id: 1\n\nid: 3\ndata: shown\n\n');
      const sealed = createSseRewriter(drop, { eventId: (id) => `s${id}` });
      assert.equal(all(run(sealed, chunks)), 'id: s1\n\nid: s3\ndata: shown\n\n');
    }
  });
});

describe('SSE rewriter: a push that throws', () => {
  it('keeps what it judged before the throw for end(): an answer in that chunk is not lost', () => {
    // An unfinished last block too large to hold.
    const big = createSseRewriter(() => undefined, { maxEventBytes: 64 });
    assert.throws(() => big.push(Buffer.from(`data: answer\n\ndata: ${'x'.repeat(100)}`)));
    assert.equal(Buffer.concat(big.end()).toString(), 'data: answer\n\n');
    // A block the rewrite throws on, after one passed as it is and one written again.
    const seen: string[] = [];
    const rewrite = (data: string) => {
      seen.push(data);
      if (data === 'bad') throw new Error('cannot judge');
      return data === 'b' ? 'B' : undefined;
    };
    const mid = createSseRewriter(rewrite, { onEnd: (resumable) => (resumable ? [] : ['owed']) });
    assert.throws(() => mid.push(Buffer.from('data: a\n\ndata: b\n\ndata: c\n\ndata: bad\n\ndata: d\n\n')));
    assert.deepEqual(seen, ['a', 'b', 'c', 'bad']);
    assert.equal(Buffer.concat(mid.end()).toString(), 'data: a\n\ndata: B\n\ndata: c\n\ndata: owed\n\n');
  });
});

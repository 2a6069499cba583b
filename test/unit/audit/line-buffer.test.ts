import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CHUNK_BYTES, LineBuffer } from '../../../src/audit/line-buffer.ts';

describe('audit line buffer', () => {
  it('takes the lines pushed since the last take, each UTF-8 with a newline', () => {
    const lines = new LineBuffer();
    assert.equal(lines.take(), undefined);
    lines.push('{"a":1}');
    lines.push('{"tool":"café ☕ 𝄞"}');
    const view = lines.take();
    assert.equal(view?.toString('utf8'), '{"a":1}\n{"tool":"café ☕ 𝄞"}\n');
    assert.equal(lines.take(), undefined);
    assert.equal(lines.length, 0);
  });

  it('never writes over a view it handed out, across chunks', () => {
    const lines = new LineBuffer();
    const taken: [Buffer, string][] = [];
    let expected = '';
    for (let i = 0; i < 2000; i++) {
      // Lines of varied sizes (some multi-byte) fill several chunks, one longer than a chunk.
      const line = i === 700 ? 'x'.repeat(CHUNK_BYTES * 2) : `{"i":${i},"pad":"${'é'.repeat(i % 97)}"}`;
      lines.push(line);
      expected += line + '\n';
      if (i % 7 === 6) {
        taken.push([lines.take()!, expected]);
        expected = '';
      }
    }
    taken.push([lines.take()!, expected]);
    for (const [view, text] of taken) assert.equal(view.toString('utf8'), text);
  });

  it('keeps lines not yet taken when a chunk fills up', () => {
    const lines = new LineBuffer();
    const line = 'y'.repeat(1000);
    const n = Math.ceil((CHUNK_BYTES * 1.5) / 1001);
    for (let i = 0; i < n; i++) lines.push(line);
    assert.equal(lines.length, n * 1001);
    assert.equal(lines.take()?.toString(), (line + '\n').repeat(n));
  });
});

describe('audit line buffer: lines written in place', () => {
  /** A source writing `text` (ASCII) and its newline a few bytes at a time, as line.ts does. */
  const source = (text: string, fail = false) => ({
    writeTo(out: { bytes: Buffer; at: number; room(n: number): Buffer }) {
      for (let i = 0; i < text.length; i += 7) {
        const piece = text.slice(i, i + 7);
        const b = out.room(piece.length);
        out.at += b.write(piece, out.at, 'latin1');
        if (fail && i >= text.length / 2) throw new Error('cut');
      }
      out.room(1)[out.at++] = 0x0a;
    },
  });

  it('keeps no part of a line whose source threw, and the lines around it whole', () => {
    const lines = new LineBuffer();
    lines.append(source('{"a":1}'));
    assert.throws(() => lines.append(source('{"half":"' + 'z'.repeat(100) + '"}', true)), /cut/);
    lines.append(source('{"b":2}'));
    lines.push('{"c":3}');
    assert.equal(lines.take()?.toString(), '{"a":1}\n{"b":2}\n{"c":3}\n');
  });

  it('moves the pending lines and the line being written to a fresh chunk, never over a view', () => {
    const lines = new LineBuffer();
    const taken: [Buffer, string][] = [];
    let expected = '';
    for (let i = 0; i < 3000; i++) {
      const line = i === 1100 ? 'w'.repeat(CHUNK_BYTES + 5) : `{"i":${i},"pad":"${'p'.repeat(i % 211)}"}`;
      if (i % 3 === 0) lines.push(line);
      else lines.append(source(line));
      expected += line + '\n';
      if (i % 11 === 10) {
        taken.push([lines.take()!, expected]);
        expected = '';
      }
    }
    taken.push([lines.take()!, expected]);
    for (const [view, text] of taken) assert.equal(view.toString('latin1'), text);
  });
});

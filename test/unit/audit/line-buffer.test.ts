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

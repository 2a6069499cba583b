/**
 * A tools/call answer (the small-response path: a strict byte scan, its id compared with the tag
 * the exchange sent) through the real gateway: the client gets the upstream's bytes with only its
 * own id put back, whether the body arrives in one piece or cut inside characters; an answer whose
 * id is not exactly this exchange's tag (a byte changed, a tag of an earlier exchange, the id twice)
 * is a 502 naming the client's id; shapes the scan leaves to the parsed path still pass there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { answerTagged, callTool, startRawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));
const RESULT = '{"content":[{"type":"text","text":"Réponse — 😀 ok"}]}';

/** What the upstream answers with, from the tag it got and the tag of the call before. */
type Answer = (tag: string, previous: string | undefined) => string;

const changed = (tag: string) => `${tag.slice(0, -1)}${tag.endsWith('A') ? 'B' : 'A'}`;

describe('a tools/call answer is matched by its bytes', () => {
  let raw: RawUpstreamGateway;
  let answer: Answer = () => '';
  let pieces = 1;
  let previous: string | undefined;

  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((tag, res) => {
        const bytes = Buffer.from(answer(tag, previous));
        previous = tag;
        res.writeHead(200, { 'content-type': 'application/json' });
        // Cut just after the lead byte of the next characters of several bytes, when asked to.
        let from = 0;
        for (let k = 1; k < pieces; k++) {
          let at = from;
          while (at < bytes.length && bytes[at]! < 0xc0) at++;
          res.write(bytes.subarray(from, Math.min(at + 1, bytes.length)));
          from = Math.min(at + 1, bytes.length);
        }
        res.end(bytes.subarray(from));
      }),
      KEY,
      ['echo'],
    );
  });
  after(() => raw.close());

  async function call(id: unknown) {
    const res = await callTool(raw, KEY, id);
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  }

  for (const cut of [1, 3]) {
    it(`passes the upstream's bytes with the client's id back (${cut} piece${cut > 1 ? 's' : ''})`, async () => {
      pieces = cut;
      answer = (tag) => `{"result":${RESULT},"jsonrpc":"2.0","id":"${tag}"}`;
      for (const id of [5, 'c-é', 'c\u2028']) {
        const got = await call(id);
        assert.equal(got.status, 200);
        assert.deepEqual(
          got.bytes,
          Buffer.from(`{"result":${RESULT},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`),
        );
      }
      pieces = 1;
    });
  }

  const refused: [string, Answer][] = [
    ['a tag with one byte changed', (tag) => `{"jsonrpc":"2.0","id":"${changed(tag)}","result":${RESULT}}`],
    ['the tag of the call before', (_tag, before) => `{"jsonrpc":"2.0","id":"${before}","result":${RESULT}}`],
    ['the id twice', (tag) => `{"jsonrpc":"2.0","id":"${tag}","result":${RESULT},"id":"${tag}"}`],
    ['the tag only inside the result', (tag) => `{"jsonrpc":"2.0","result":{"id":"${tag}"}}`],
    ['trailing bytes', (tag) => `{"jsonrpc":"2.0","id":"${tag}","result":${RESULT}} x`],
  ];
  for (const [name, make] of refused) {
    it(`refuses ${name} with 502 naming the client's id`, async () => {
      await call(0); // so that there is a call before
      answer = make;
      const got = await call(7);
      assert.equal(got.status, 502);
      const error = JSON.parse(got.bytes.toString()) as { id: unknown; error: { code: number } };
      assert.equal(error.id, 7);
      assert.ok(!got.bytes.includes('Réponse'));
      answer = (tag) => `{"result":${RESULT},"jsonrpc":"2.0","id":"${tag}"}`;
    });
  }

  it('passes what the scan leaves to the parsed path: an escaped id key, the tag escaped', async () => {
    answer = (tag) => `{"jsonrpc":"2.0","\\u0069d":"\\u0067${tag.slice(1)}","result":${RESULT}}`;
    const got = await call(9);
    assert.equal(got.status, 200);
    assert.deepEqual(JSON.parse(got.bytes.toString()), { jsonrpc: '2.0', id: 9, result: JSON.parse(RESULT) });
  });
});

/**
 * A large tools/list response (the one-pass list path) through the real gateway, as the upstream's
 * bytes arrive: with a Content-Length or chunked, as JSON or as an SSE event, cut inside characters
 * of several bytes, and holding what a scanner may read differently from JSON.parse (an escaped
 * `name` key, a `tools` array nested in a schema, a name written with escapes). The client reads the
 * answer with JSON.parse: its own id, and exactly the tools its key may see.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintKey } from '../../src/auth/key-format.ts';
import { readTagUnverified } from '../../src/integrity/request-tag.ts';
import { answerRequests, postBody, startRawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));

/** 60 tools, half allowed (`echo_*`), with characters of two, three and four bytes everywhere. */
function tools(): string[] {
  const out: string[] = [];
  for (let i = 0; i < 60; i++) {
    const name = i % 2 === 0 ? `echo_é${i}` : `secret_😀${i}`;
    out.push(
      JSON.stringify({
        name,
        description: `Lit la chose — ${'é€😀'.repeat(8)} ${i}`,
        inputSchema: { type: 'object', properties: { q: { type: 'string', default: '"tools":[' } } },
      }),
    );
  }
  // What a scanner may read differently from JSON.parse.
  out.push('{"\\u006eame":"secret_escaped_key","description":"x"}');
  out.push('{"name":"\\u0073ecret_escaped_value","description":"x"}');
  out.push('{"name":"\\u0065cho_escaped_value","description":"x"}');
  out.push(
    '{"name":"echo_schema","inputSchema":{"type":"object","tools":[{"name":"secret_nested"}],"properties":{}}}',
  );
  return out;
}
const TOOLS = tools();
/** The catalogue in another version: the first allowed tool's description says `vN`. */
const variant = (n: number) => [TOOLS[0]!.replace('Lit la chose', `Lit la chose v${n}`), ...TOOLS.slice(1)];
const ALLOWED = TOOLS.map((t) => (JSON.parse(t) as { name: string }).name).filter((n) =>
  n.startsWith('echo_'),
);

/** Cuts `bytes` into pieces, each cut inside a character of several bytes. */
function cutInsideCharacters(bytes: Buffer, pieces: number): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (let k = 1; k < pieces; k++) {
    let at = Math.floor((bytes.length * k) / pieces);
    while (at < bytes.length && (bytes[at]! & 0xc0) !== 0x80) at++;
    out.push(bytes.subarray(from, at));
    from = at;
  }
  out.push(bytes.subarray(from));
  return out;
}

async function writeSlowly(res: ServerResponse, pieces: Buffer[]) {
  for (const piece of pieces) {
    res.write(piece);
    await sleep(5);
  }
  res.end();
}

describe('a large tools/list arriving in pieces reaches the client filtered', () => {
  let upstream: RawUpstreamGateway;
  before(async () => {
    upstream = await startRawUpstreamGateway(
      answerRequests((m, res) => {
        const asked = String(readTagUnverified(m.id)?.clientId);
        // `MODE:vN`: the catalogue in its Nth version (one allowed tool's description changed).
        const [mode, version] = asked.split(':');
        const list = version === undefined ? TOOLS : variant(Number(version.slice(1)));
        const body = Buffer.from(
          `{"jsonrpc":"2.0","id":${JSON.stringify(m.id)},"result":{"tools":[${list.join(',')}]}}`,
        );
        if (mode === 'json-length') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
          void writeSlowly(res, cutInsideCharacters(body, 5));
        } else if (mode === 'json-chunked') {
          res.writeHead(200, { 'content-type': 'application/json' });
          void writeSlowly(res, cutInsideCharacters(body, 7));
        } else {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          const event = Buffer.concat([
            Buffer.from('event: message\nid: e1\ndata: '),
            body,
            Buffer.from('\n\n'),
          ]);
          void writeSlowly(res, [Buffer.from(': primed\n\n'), ...cutInsideCharacters(event, 6)]);
        }
      }),
      KEY,
      ['echo_*'],
    );
  });
  after(async () => {
    await upstream.close();
  });

  const list = (id: string) =>
    postBody(upstream, KEY, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }));

  for (const mode of ['json-length', 'json-chunked', 'sse']) {
    it(mode, async () => {
      const res = await list(mode);
      const text = await res.text();
      assert.equal(res.status, 200, text.slice(0, 200));
      let json = text;
      if (mode === 'sse') {
        const events = text.split('\n\n').filter((e) => /^data: /m.test(e));
        assert.equal(events.length, 1, text.slice(0, 200));
        json = /^data: (.*)$/m.exec(events[0]!)![1]!;
      }
      const answer = JSON.parse(json) as { id: unknown; result: { tools: { name: string }[] } };
      assert.equal(answer.id, mode);
      assert.deepEqual(
        answer.result.tools.map((t) => t.name),
        ALLOWED,
      );
      assert.ok(!json.includes('secret_😀'), 'no denied tool in the bytes');
    });
  }

  it('a catalogue asked again, and versions of it asked at once, each reach the client as their own', async () => {
    // The second answer of a catalogue comes from the scan memo, sent as views of its copy while the
    // held buffer takes the next body; versions that differ in one allowed tool interleave with it.
    const first = await (await list('json-length:v1')).text();
    const answers = await Promise.all(
      ['v1', 'v2', 'v1', 'v3', 'v2', 'v1'].map(async (v) => [
        v,
        await (await list(`json-length:${v}`)).text(),
      ]),
    );
    for (const [v, text] of answers) {
      const answer = JSON.parse(text!) as {
        id: unknown;
        result: { tools: { name: string; description: string }[] };
      };
      assert.equal(answer.id, `json-length:${v}`);
      assert.deepEqual(
        answer.result.tools.map((t) => t.name),
        ALLOWED,
      );
      assert.ok(
        answer.result.tools[0]!.description.startsWith(`Lit la chose ${v} `),
        `${v}: its own version`,
      );
      if (v === 'v1') assert.equal(text, first, 'the same bytes as the first answer');
    }
  });
});

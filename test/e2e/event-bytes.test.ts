/**
 * A tools/call answered as an SSE stream (the event byte path: event-match.ts) through the real
 * gateway: the progress notification passes as the upstream wrote it, before the result exists;
 * the result event gets only the client's id back, whether the stream arrives in one piece or cut
 * anywhere; an event whose id is not exactly this exchange's tag, or a notification naming a request
 * the gateway did not forward, becomes the gateway's error event; a cancellation naming the tag is
 * translated (the parse's work), so the client never sees a gateway id.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { UNREADABLE } from '../../src/policy/unreadable.ts';
import {
  answerTagged,
  callTool,
  RAW_SESSION_SECRET,
  startRawUpstreamGateway,
} from '../helpers/raw-upstream.ts';
import { sealerFor } from '../helpers/event-ids.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));
const RESULT = '{"content":[{"type":"text","text":"Réponse — 😀 ok"}]}';
const PROGRESS =
  'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0,"total":1}}\n\n';

/** The events the upstream sends after the progress one, from the tag it got and the one before. */
type Events = (tag: string, previous: string | undefined) => string;

const changed = (tag: string) => `${tag.slice(0, -1)}${tag.endsWith('A') ? 'B' : 'A'}`;
const resultEvent = (id: string, eventId = '4') =>
  `event: message\nid: ${eventId}\ndata: {"jsonrpc":"2.0","id":${id},"result":${RESULT}}\n\n`;
/** The result event as the client gets it: the upstream's event id sealed for the key. */
const SEALED = sealerFor(RAW_SESSION_SECRET, KEY)('4');
const clientResult = (id: string) => resultEvent(id, SEALED);

describe('a tools/call answered as an SSE stream is matched event by event', () => {
  let raw: RawUpstreamGateway;
  let events: Events = () => '';
  let cuts: number[] = [];
  let previous: string | undefined;
  /** Resolved by the test once it read the progress event: the upstream then sends the rest. */
  let release: (() => void) | undefined;

  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((tag, res) => {
        const rest = Buffer.from(events(tag, previous));
        previous = tag;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(PROGRESS);
        const send = () => {
          let from = 0;
          for (const at of cuts.filter((c) => c > 0 && c < rest.length)) {
            res.write(rest.subarray(from, at));
            from = at;
          }
          res.end(rest.subarray(from));
        };
        if (release === undefined) send();
        else release = send;
      }),
      KEY,
      ['echo'],
    );
  });
  after(() => raw.close());

  async function call(id: unknown, waitForProgress = false) {
    if (waitForProgress) release = () => {};
    const res = await callTool(raw, KEY, id);
    const reader = res.body!.getReader();
    const chunks: Buffer[] = [];
    if (waitForProgress) {
      // The progress event arrives while the upstream still holds the result back.
      while (!Buffer.concat(chunks).toString().endsWith('\n\n')) {
        const { value } = await reader.read();
        chunks.push(Buffer.from(value!));
      }
      assert.equal(Buffer.concat(chunks).toString(), PROGRESS);
      const send = release!;
      release = undefined;
      send();
    }
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
    }
    return { status: res.status, text: Buffer.concat(chunks).toString() };
  }

  it('passes the progress event before the result exists, then the result with the client id', async () => {
    events = (tag) => resultEvent(`"${tag}"`);
    const got = await call(5, true);
    assert.equal(got.status, 200);
    assert.equal(got.text, PROGRESS + clientResult('5'));
  });

  for (const at of [[1], [20, 21, 60], [40, 200]]) {
    it(`passes the upstream's bytes with the client's id back (cut at ${at.join(', ')})`, async () => {
      cuts = at;
      events = (tag) => resultEvent(`"${tag}"`);
      for (const id of [5, 'c-é', 'c\u2028']) {
        const got = await call(id);
        assert.equal(got.text, PROGRESS + clientResult(JSON.stringify(id)));
      }
      cuts = [];
    });
  }

  it('gives an error event the client id back too', async () => {
    events = (tag) =>
      `event: message\ndata: {"jsonrpc":"2.0","id":"${tag}","error":{"code":-32602,"message":"no"}}\n\n`;
    const got = await call('e-1');
    assert.equal(
      got.text,
      `${PROGRESS}event: message\ndata: {"jsonrpc":"2.0","id":"e-1","error":{"code":-32602,"message":"no"}}\n\n`,
    );
  });

  const refused: [string, Events][] = [
    ['a result whose tag has one byte changed', (tag) => resultEvent(`"${changed(tag)}"`)],
    ['the result of the call before', (_tag, before) => resultEvent(`"${before}"`)],
    ['the result twice', (tag) => resultEvent(`"${tag}"`) + resultEvent(`"${tag}"`)],
    [
      'a cancellation naming a forged gateway id',
      (tag) =>
        `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${changed(tag)}"}}\n\n`,
    ],
    [
      'a notification with a result',
      (tag) => `event: message\ndata: {"jsonrpc":"2.0","method":"x","id":"${tag}","result":{}}\n\n`,
    ],
  ];
  for (const [name, make] of refused) {
    it(`replaces ${name} with the gateway's error event`, async () => {
      await call(0); // so that there is a call before
      events = make;
      const got = await call(7);
      assert.ok(got.text.startsWith(PROGRESS), got.text);
      assert.ok(got.text.includes(`data: ${UNREADABLE}\n\n`), got.text);
      assert.ok(!got.text.includes('"g1'), `no gateway id reaches the client: ${got.text}`);
    });
  }

  it('translates a cancellation naming the tag (left to the parse), never showing the tag', async () => {
    events = (tag) =>
      `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${tag}"}}\n\n`;
    const got = await call(8);
    // The stream then ends owing the call an error: a cancellation is no answer (an SDK client
    // handles one for the requests it serves, not those it made), and it gave no id to resume at.
    assert.equal(
      got.text,
      `${PROGRESS}event: message\ndata: {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8}}\n\n` +
        'data: {"jsonrpc":"2.0","id":8,"error":{"code":-32002,"message":"upstream ended the stream without an answer"}}\n\n',
    );
  });
});

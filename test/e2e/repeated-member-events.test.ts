/**
 * Through the real gateway: an upstream that hides another exchange's tag in the first of a repeated
 * member the matching reads (a cancellation's requestId, a notification's params, a subscription's
 * _meta, a result's _meta, an error's id) while the last one is harmless. JSON.parse (the gateway)
 * reads the last, a first-wins client would read the first: the event becomes the gateway's error
 * event and the client never sees a gateway tag, as when the tag is written once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { UNREADABLE } from '../../src/policy/unreadable.ts';
import { answerTagged, callTool, startRawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));
const SUB = 'io.modelcontextprotocol/subscriptionId';
const REFUSED = `event: message\ndata: ${UNREADABLE}\n\n`;
const OWED =
  'data: {"jsonrpc":"2.0","id":9,"error":{"code":-32002,"message":"upstream ended the stream without an answer"}}\n\n';

/** The event data the upstream sends, from this exchange's tag and the one before it. */
type Event = (tag: string, previous: string) => string;

const ATTACKS: Record<string, Event> = {
  'a cancellation naming the earlier tag once (control)': (_t, p) =>
    `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${p}"}}`,
  'a cancellation whose requestId repeats': (_t, p) =>
    `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${p}","requestId":"x"}}`,
  'a notification whose params repeat': (_t, p) =>
    `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${p}"},"params":{}}`,
  'a notification whose _meta repeats': (_t, p) =>
    `{"jsonrpc":"2.0","method":"notifications/message","params":{"_meta":{"${SUB}":"${p}"},"_meta":{}}}`,
  'an error naming no request whose id repeats': (_t, p) =>
    `{"jsonrpc":"2.0","id":"${p}","id":null,"error":{"code":-32603,"message":"x"}}`,
  "the exchange's result whose result repeats": (t, p) =>
    `{"jsonrpc":"2.0","id":"${t}","result":{"_meta":{"${SUB}":"${p}"}},"result":{"content":[]}}`,
};

describe('a repeated member hiding a gateway tag, through the gateway', () => {
  let raw: RawUpstreamGateway;
  let event: Event = () => '';
  let previous = '';
  const received: string[] = [];

  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((tag, res) => {
        received.push(tag);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`event: message\ndata: ${event(tag, previous || tag)}\n\n`);
        previous = tag;
      }),
      KEY,
      ['echo'],
    );
  });
  after(() => raw.close());

  async function call(): Promise<string> {
    const res = await callTool(raw, KEY, 9);
    assert.equal(res.status, 200);
    return res.text();
  }

  for (const [name, attack] of Object.entries(ATTACKS)) {
    it(`${name}: the gateway's error event, no tag`, async () => {
      event = () =>
        `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0}}`;
      await call();
      event = attack;
      const text = await call();
      assert.ok(received.length >= 2);
      for (const tag of received) assert.ok(!text.includes(tag), `the client saw a gateway tag: ${text}`);
      // The refused event answers nothing (the refused result neither, since review-owed): the
      // stream then ends owing the call its error.
      assert.equal(text, REFUSED + OWED);
    });
  }
});

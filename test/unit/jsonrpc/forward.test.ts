/**
 * Which bytes a parsed body forwards: the client's own when every parser reads them as the value
 * judged (no key repeated at any depth, nothing spelled as a `\u` escape), without the whitespace
 * around the value and without a copy; otherwise those bytes with the replaced members left out and
 * `\u` escapes spelled plainly (splice.ts; splice.test.ts has the property test). Forwarding the
 * client's bytes spares a JSON.stringify of up to 4 MiB on every body (bench/parse-fuzz.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

const call = (args: string) =>
  `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":${args}}}`;

function forward(text: string) {
  // Not from Buffer's shared pool, so a view of the body is told from a copy by its ArrayBuffer.
  const body = Buffer.alloc(Buffer.byteLength(text));
  body.write(text);
  const parsed = parseBody(body, KNOWN_METHODS);
  return { body, parsed, text: parsed.bytes.toString('utf8') };
}

describe("forwarding the client's bytes", () => {
  it('forwards a plain body as it came, a view of the same memory (no copy, no stringify)', () => {
    const { body, parsed, text } = forward(call('{"q":"naïve 😀","n":[1,2.5,-3e7,12345678901234567890]}'));
    assert.equal(text, body.toString('utf8'));
    assert.equal(parsed.bytes.buffer, body.buffer, 'the same ArrayBuffer as the body');
  });

  it('keeps the whitespace inside the value and drops the whitespace around it', () => {
    const inner = '{ "jsonrpc" : "2.0",\n  "id": 1, "method": "ping" }';
    assert.equal(forward(` \r\n${inner}\t\n`).text, inner);
  });

  it('keeps short escapes as written (they mean one thing to every parser)', () => {
    const sent = call('{"s":"a\\"b\\\\c\\/d\\n\\t"}');
    assert.equal(forward(sent).text, sent);
  });

  it('leaves out a member a key repeated deep inside the arguments replaced: the upstream sees only the value judged', () => {
    // A first-key-wins upstream would read "rm -rf /" if the client's bytes were forwarded.
    const { text, parsed } = forward(call('{"cmd":{"argv":[{"x":1}],"run":"rm -rf /","run":"ls"}}'));
    assert.equal(text, JSON.stringify(parsed.messages[0]));
    assert.ok(!text.includes('rm -rf'), text);
  });

  it('leaves out a replaced member in the second message of a batch', () => {
    const sent = `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"a":1,"a":2}}}]`;
    const { text } = forward(sent);
    assert.equal(
      text,
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping","params":{"_meta":{"a":2}}}]',
    );
  });

  it('leaves out a replaced member with the same value too (still ambiguous to count on)', () => {
    assert.equal(forward(call('{"a":1,"a":1}')).text, call('{"a":1}'));
  });

  it('re-spells a string with a \\u escape anywhere, plainly', () => {
    assert.equal(forward(call('{"s":"\\u0065cho"}')).text, call('{"s":"echo"}'));
    assert.equal(forward(call('{"\\u0073":1}')).text, call('{"s":1}'));
  });
});

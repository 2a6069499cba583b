/**
 * parse.ts reads a body as strict UTF-8 by validating it (buffer.isUtf8) and then decoding it,
 * instead of a fatal TextDecoder (which cost as much as JSON.parse on a 4 MiB body). The two must
 * refuse exactly the same bytes and read the others alike: overlong forms, surrogates, code points
 * past U+10FFFF, truncated sequences, stray continuation bytes, and a byte order mark kept as text.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes near the edges of UTF-8's rules, and any byte. */
const edgeByte = fc.oneof(
  fc.constantFrom(0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff),
  fc.constantFrom(0x9f, 0xa0, 0x8f, 0x90),
  fc.integer({ min: 0x20, max: 0xff }).filter((b) => b !== 0x22 && b !== 0x5c),
);

describe('strict UTF-8 of a body', () => {
  it('refuses exactly what a fatal TextDecoder refuses, and reads the rest alike', () => {
    fc.assert(
      fc.property(fc.array(edgeByte, { maxLength: 12 }), (bytes) => {
        const body = Buffer.concat([
          Buffer.from(
            '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"s":"',
          ),
          Buffer.from(bytes),
          Buffer.from('"}}}'),
        ]);
        let expected: string | undefined;
        try {
          expected = fatal.decode(body);
        } catch {
          expected = undefined;
        }
        let parsed: ReturnType<typeof parseBody> | undefined;
        try {
          parsed = parseBody(body, KNOWN_METHODS);
        } catch (err) {
          assert.ok(isGatewayError(err) && err.code === 'ERR_PARSE', String(err));
        }
        if (expected === undefined) assert.equal(parsed, undefined, 'refused as TextDecoder refuses');
        else {
          assert.ok(parsed !== undefined, 'accepted as TextDecoder accepts');
          type Call = { params: { arguments: { s: string } } };
          const read = (parsed.messages[0] as unknown as Call).params.arguments.s;
          assert.equal(read, (JSON.parse(expected) as Call).params.arguments.s);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('refuses a byte order mark before the value', () => {
    const body = Buffer.from('\ufeff{"jsonrpc":"2.0","id":1,"method":"ping"}');
    assert.throws(
      () => parseBody(body, KNOWN_METHODS),
      (err: unknown) =>
        isGatewayError(err) && err.code === 'ERR_PARSE' && /byte order mark/.test(err.message),
    );
  });
});

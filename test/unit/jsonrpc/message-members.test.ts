/**
 * A message holds the members JSON-RPC 2.0 defines and no other (parse.ts validateMessage): an
 * upstream that matches keys by case reads `"Method"` or `"Params"` beside a `result` as a request.
 * Small bodies and large ones (arguments left out of JSON.parse) alike.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

const PAD = `"${'x'.repeat(200 * 1024)}"`;
const refused = (body: string) =>
  assert.throws(
    () => parseBody(Buffer.from(body), KNOWN_METHODS, undefined, false),
    (err: unknown) =>
      isGatewayError(err) && err.code === 'ERR_INVALID_REQUEST' && /unknown member/.test(err.message),
    body.slice(0, 120),
  );

describe('message members', () => {
  it('refuses any member besides jsonrpc, id, method, params, result and error', () => {
    refused('{"jsonrpc":"2.0","id":7,"result":{},"Method":"tools/call","Params":{"name":"rm_rf"}}');
    refused('{"jsonrpc":"2.0","id":8,"error":{"code":1,"message":"x"},"METHOD":"resources/read"}');
    refused('{"jsonrpc":"2.0","id":1,"method":"ping","7":{}}');
    refused('[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping","extra":1}]');
    refused(
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":${PAD}}},"Result":{}}`,
    );
  });

  it('accepts the members it defines, in any order', () => {
    for (const body of [
      '{"id":1,"params":{},"method":"ping","jsonrpc":"2.0"}',
      '{"jsonrpc":"2.0","id":"s","result":{"roots":[]}}',
      '{"jsonrpc":"2.0","id":"s","error":{"code":-1,"message":"no"}}',
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":${PAD}}}}`,
    ])
      assert.ok(parseBody(Buffer.from(body), KNOWN_METHODS, undefined, false).messages.length >= 1);
  });
});

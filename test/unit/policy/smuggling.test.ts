/**
 * Smuggling attempts at the parse + judge level: each body tries to make the gateway judge one
 * thing while the upstream acts on another. Each test shows the attack; keep them named so nobody
 * "simplifies" a defence away.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { judge } from '../../../src/policy/judge.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

const grants = compileGrants({
  allow: ['echo', 'search_*'],
  prompts: ['greeting'],
  resources: ['file:///public/*'],
});
const options = { unknownMethods: 'deny' } as const;
const permissive = { unknownMethods: 'allow' } as const;

function inspect(body: string | Buffer, opts: { unknownMethods: 'allow' | 'deny' } = options) {
  const parsed = parseBody(typeof body === 'string' ? Buffer.from(body) : body, KNOWN_METHODS);
  const verdicts = parsed.messages.map((m) => judge(m, grants, opts));
  return { parsed, verdicts, forwarded: parsed.bytes.toString('utf8') };
}

function rejects(body: string | Buffer, code: string, opts?: { unknownMethods: 'allow' | 'deny' }): void {
  assert.throws(
    () => inspect(body, opts),
    (err: unknown) => isGatewayError(err) && err.code === code,
  );
}

const call = (params: string, id = 1) =>
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${params}}`;

describe('smuggling: duplicate JSON keys', () => {
  it('{"name":"echo","name":"rm_rf"}: judged and forwarded as rm_rf only (denied)', () => {
    const { verdicts, forwarded } = inspect(call('{"name":"echo","name":"rm_rf"}'));
    assert.equal(verdicts[0]?.allowed, false);
    assert.equal(verdicts[0]?.record.tool, 'rm_rf');
    assert.equal(forwarded.match(/"name"/g)?.length, 1);
    assert.ok(!forwarded.includes('echo'));
  });

  it('{"name":"rm_rf","name":"echo"}: allowed as echo, and the upstream never sees rm_rf', () => {
    // A first-key-wins upstream would run rm_rf if the original bytes were forwarded.
    const { verdicts, forwarded } = inspect(call('{"name":"rm_rf","name":"echo"}'));
    assert.equal(verdicts[0]?.allowed, true);
    assert.equal(verdicts[0]?.record.tool, 'echo');
    assert.ok(!forwarded.includes('rm_rf'));
    assert.deepEqual(JSON.parse(forwarded), {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo' },
    });
  });

  it('duplicate "method" keys: the method judged is the one forwarded', () => {
    const body =
      '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"rm_rf"}}';
    const { verdicts, forwarded } = inspect(body);
    assert.equal(verdicts[0]?.record.rpc_method, 'tools/call');
    assert.equal(verdicts[0]?.allowed, false);
    assert.ok(!forwarded.includes('tools/list'));
  });
});

describe('smuggling: escapes and encodings', () => {
  it('\\u escapes in the tool name are judged decoded (rm_rf spelled \\u0072m_rf is denied)', () => {
    const { verdicts } = inspect(call('{"name":"\\u0072m_rf"}'));
    assert.equal(verdicts[0]?.allowed, false);
    assert.equal(verdicts[0]?.record.tool, 'rm_rf');
  });

  it('\\u escapes are forwarded normalized (the upstream gets plain "echo")', () => {
    const { verdicts, forwarded } = inspect(call('{"name":"\\u0065\\u0063ho"}'));
    assert.equal(verdicts[0]?.allowed, true);
    assert.ok(forwarded.includes('"name":"echo"'));
    assert.ok(!forwarded.includes('\\u'));
  });

  it('a byte order mark is refused (parsers disagree on skipping it)', () => {
    rejects(
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(call('{"name":"echo"}'))]),
      'ERR_PARSE',
    );
  });

  it('trailing bytes after the JSON value are refused (a second message for a lenient parser)', () => {
    rejects(call('{"name":"echo"}') + call('{"name":"rm_rf"}', 2), 'ERR_PARSE');
    rejects(call('{"name":"echo"}') + '\u0000', 'ERR_PARSE');
    rejects(call('{"name":"echo"}') + ' x', 'ERR_PARSE');
  });

  it('trailing whitespace is harmless and is not forwarded', () => {
    const { forwarded } = inspect(call('{"name":"echo"}') + ' \r\n\t');
    assert.equal(forwarded, call('{"name":"echo"}'));
  });

  it('non-UTF-8 bytes are refused (an overlong "/", a lone 0xFF, a CESU surrogate)', () => {
    for (const bad of [[0xc0, 0xaf], [0xff], [0xed, 0xa0, 0x80]]) {
      const body = Buffer.concat([Buffer.from(call('{"name":"ech')), Buffer.from(bad), Buffer.from('o"}')]);
      rejects(body, 'ERR_PARSE');
    }
  });

  it('a UTF-16 body is refused', () => {
    rejects(Buffer.from(call('{"name":"echo"}'), 'utf16le'), 'ERR_PARSE');
  });

  it('a lone surrogate in the name is invalid params even under a wildcard', () => {
    // UTF-8 encoders replace it with U+FFFD or drop it: the upstream would see another name.
    const { verdicts } = inspect(call('{"name":"search_\\ud800"}'));
    assert.equal(verdicts[0]?.allowed, false);
    assert.equal(verdicts[0]?.error?.code, 'ERR_INVALID_PARAMS');
  });

  it('a NUL in the name is invalid params even under a wildcard (C strings end there)', () => {
    const { verdicts } = inspect(call('{"name":"search_\\u0000rm_rf"}'));
    assert.equal(verdicts[0]?.error?.code, 'ERR_INVALID_PARAMS');
  });

  it('an escaped path traversal in a resource URI is judged decoded and refused', () => {
    const body =
      '{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///public/\\u002e\\u002e/private/keys.txt"}}';
    const { verdicts } = inspect(body);
    assert.equal(verdicts[0]?.allowed, false);
    assert.equal(verdicts[0]?.record.resource, 'file:///public/../private/keys.txt');
  });
});

describe('smuggling: shapes', () => {
  it('non-object params are refused (an array the upstream might read positionally)', () => {
    rejects(call('["rm_rf"]'), 'ERR_INVALID_REQUEST');
    rejects(call('"rm_rf"'), 'ERR_INVALID_REQUEST');
    rejects(call('null'), 'ERR_INVALID_REQUEST');
  });

  it('a method of another type is refused (number, array, object)', () => {
    for (const method of ['1', '["tools/call"]', '{"name":"tools/call"}', 'null', '""']) {
      rejects(`{"jsonrpc":"2.0","id":1,"method":${method},"params":{"name":"rm_rf"}}`, 'ERR_INVALID_REQUEST');
    }
  });

  it('a known method in another case is refused ("Tools/Call"), even with unknown_methods: allow', () => {
    for (const method of ['Tools/Call', 'TOOLS/CALL', 'tools/Call', 'Logging/setlevel']) {
      rejects(
        `{"jsonrpc":"2.0","id":1,"method":"${method}","params":{"name":"rm_rf"}}`,
        'ERR_INVALID_REQUEST',
        permissive,
      );
    }
  });

  it('Unicode look-alikes that case-insensitive matchers fold to a known method are refused', () => {
    // U+017F (long s) upper-cases to S; U+212A (Kelvin sign) lower-cases to k.
    for (const method of ['tool\\u017f/call', 'tas\\u212as/get', '\\u0131nitialize']) {
      rejects(
        `{"jsonrpc":"2.0","id":1,"method":"${method}","params":{"name":"rm_rf"}}`,
        'ERR_INVALID_REQUEST',
        permissive,
      );
    }
  });

  it('"__proto__" keys are refused anywhere (an Object.assign upstream would read them as the prototype)', () => {
    const attack = call('{"__proto__":{"name":"rm_rf"}}');
    // What the attack relies on: JSON.parse keeps an own key, assignment turns it into a prototype.
    const params = (JSON.parse(attack) as { params: object }).params;
    assert.equal((params as { name?: string }).name, undefined);
    assert.equal((Object.assign({}, params) as { name?: string }).name, 'rm_rf');
    rejects(attack, 'ERR_INVALID_REQUEST');
    rejects(call('{"\\u005f_proto__":{"name":"rm_rf"}}'), 'ERR_INVALID_REQUEST');
    rejects(
      call('{"name":"echo","arguments":{"a":[{"__proto__":{"isAdmin":true}}]}}'),
      'ERR_INVALID_REQUEST',
    );
    rejects(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","__proto__":{"params":{"name":"rm_rf"}}}',
      'ERR_INVALID_REQUEST',
    );
  });

  it('keys that differ only by case are refused anywhere (a Go upstream reads them as one field)', () => {
    // encoding/json matches "NAME" to the field Name, last key winning: the upstream would run
    // rm_rf where the gateway judged echo.
    rejects(call('{"name":"echo","NAME":"rm_rf"}'), 'ERR_INVALID_REQUEST');
    rejects(call('{"name":"echo","naMe":"rm_rf"}'), 'ERR_INVALID_REQUEST');
    // Unicode simple folding: U+017F (long s) is s, U+212A (Kelvin sign) is k.
    rejects(call('{"name":"echo","arguments":{"\\u017fcope":"a","scope":"b"}}'), 'ERR_INVALID_REQUEST');
    rejects(call('{"name":"echo","arguments":{"\\u212aey":1,"key":2}}'), 'ERR_INVALID_REQUEST');
    rejects(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"Params":{"name":"rm_rf"}}',
      'ERR_INVALID_REQUEST',
    );
    rejects(call('{"name":"echo","arguments":{"a":[{"path":"/tmp","PATH":"/etc"}]}}'), 'ERR_INVALID_REQUEST');
  });

  it('camelCase keys and keys that differ by more than case pass', () => {
    const { verdicts } = inspect(
      call(
        '{"name":"echo","arguments":{"userId":1,"userID2":2,"Path":"a","paths":"b"},"_meta":{"progressToken":"t"}}',
      ),
    );
    assert.equal(verdicts[0]?.allowed, true);
    const init = inspect(
      '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}',
    );
    assert.equal(init.verdicts[0]?.allowed, true);
  });

  it('a value merely containing the text __proto__ is fine', () => {
    const { verdicts } = inspect(call('{"name":"echo","arguments":{"text":"__proto__"}}'));
    assert.equal(verdicts[0]?.allowed, true);
  });

  it('a message with both a method and a result is refused', () => {
    rejects(
      '{"jsonrpc":"2.0","id":1,"result":{},"method":"tools/call","params":{"name":"rm_rf"}}',
      'ERR_INVALID_REQUEST',
    );
  });

  it('ids that would not survive a round trip are refused', () => {
    for (const id of ['1.5', '1e20', 'null', 'true', '{}'])
      rejects(call('{"name":"echo"}', id as unknown as number), 'ERR_INVALID_REQUEST');
  });

  it('a tools/call sent as a notification is judged like a request', () => {
    const { verdicts } = inspect('{"jsonrpc":"2.0","method":"tools/call","params":{"name":"rm_rf"}}');
    assert.equal(verdicts[0]?.allowed, false);
    assert.equal(verdicts[0]?.error?.code, 'ERR_TOOL_DENIED');
  });

  it('a batch hiding a denied call: every message is judged', () => {
    const { parsed, verdicts } = inspect(`[${call('{"name":"echo"}', 1)},${call('{"name":"rm_rf"}', 2)}]`);
    assert.equal(parsed.batch, true);
    assert.deepEqual(
      verdicts.map((v) => v.allowed),
      [true, false],
    );
    assert.equal(verdicts[1]?.error?.rpcId, 2);
  });

  it('nesting too deep to re-serialize is a parse error, not a crash', () => {
    const depth = 200_000;
    rejects(call(`{"name":"echo","arguments":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}`), 'ERR_PARSE');
  });
});

describe('smuggling: a key V8 misreads', () => {
  // Node 24's JSON.parse, having met a key that ends in a backslash, reads the key `"\""` in the
  // same place of a later object as that key (`\`): the gateway would judge a key the upstream
  // never reads. The first object primes it; a body (or any earlier body) can hold both.
  const primed = String.raw`{"name":"echo","arguments":{"a":{"x":0,"\\":1},"b":{"x":0,"\"":2}}}`;

  it('a key holding an escaped quote is refused, with the request id', () => {
    assert.throws(
      () => inspect(call(primed, 7)),
      (err: unknown) =>
        isGatewayError(err) &&
        err.code === 'ERR_INVALID_REQUEST' &&
        err.rpcId === 7 &&
        /escaped quote/.test(err.message),
    );
    rejects(call(String.raw`{"name":"echo","arguments":{"say \"hi\"":1}}`), 'ERR_INVALID_REQUEST');
    rejects(call(String.raw`{"name":"echo","arguments":{"a":{"\"" : 1}}}`), 'ERR_INVALID_REQUEST');
  });

  it('quotes in values and backslashes in keys still pass, forwarded as sent', () => {
    const body = call(String.raw`{"name":"echo","arguments":{"C:\\dir\\":"say \"hi\"","q":"\"\\\""}}`);
    const { verdicts, forwarded, parsed } = inspect(body);
    assert.equal(verdicts[0]?.allowed, true);
    assert.equal(forwarded, body);
    const args = (parsed.messages[0] as unknown as { params: { arguments: Record<string, unknown> } }).params
      .arguments;
    assert.deepEqual(Object.keys(args), ['C:\\dir\\', 'q']);
  });

  // Not only `\"`: after a key holding a backslash (`n\u0`, spelled `"n\\u0"`), a key spelled with
  // any escape in the same place of a later object (after the same keys: `q1` here, which nothing
  // else in this process spells) comes out as that key when its bytes start with the earlier key's
  // characters and it decodes to as many. The second body was judged as calling echo, and forwarded
  // with the escape spelled plainly: `"name":"echo","name":"rm_rf"`, rm_rf to an upstream that keeps
  // the last.
  it('a tool name spelled with a \\u escape, read as an earlier key, is refused, with the request id', () => {
    const prime = call(String.raw`{"q1":1,"name":"echo","n\\u0":"x","arguments":{}}`, 1);
    assert.equal(inspect(prime).verdicts[0]?.allowed, true);
    assert.throws(
      () => inspect(call(String.raw`{"q1":1,"name":"echo","n\u0061me":"rm_rf","arguments":{}}`, 8)),
      (err: unknown) =>
        isGatewayError(err) &&
        err.code === 'ERR_INVALID_REQUEST' &&
        err.rpcId === 8 &&
        /not read as it is spelled/.test(err.message),
    );
  });

  it('a key spelled with a short escape, read as an earlier key, is refused (its bytes went as sent)', () => {
    const args = (key: string) => call(`{"name":"echo","arguments":{"q2":1,${key}:"a"}}`, 9);
    // The upstream reads `path/`, the gateway read `path\`.
    assert.equal(inspect(args(String.raw`"path\\"`)).verdicts[0]?.allowed, true);
    rejects(args(String.raw`"path\/"`), 'ERR_INVALID_REQUEST');
    rejects(args(String.raw`"path\n"`), 'ERR_INVALID_REQUEST');
    // Read as spelled, the earlier key still passes, and so does the escaped one in another place.
    assert.equal(inspect(args(String.raw`"path\\"`)).forwarded, args(String.raw`"path\\"`));
    // Forwarded spelled plainly: no key reaches the upstream spelled with an escape (but inside a
    // part no rule reads), so no V8 upstream can misread it, whatever it parsed before.
    const elsewhere = call(String.raw`{"name":"echo","arguments":{"q3":1,"path\/":"a"}}`);
    assert.equal(inspect(elsewhere).forwarded, call(`{"name":"echo","arguments":{"q3":1,"path/":"a"}}`));
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { extractCredential } from '../../../src/auth/credentials.ts';
import type { CredentialResult } from '../../../src/auth/credentials.ts';
import { mintKey } from '../../../src/auth/key-format.ts';

const KEY = mintKey(Buffer.alloc(32, 7));

/** Headers as Node builds them: lower-case names, first Authorization wins, X-API-Key joined. */
function request(pairs: ReadonlyArray<readonly [string, string]>, url = '/mcp'): CredentialResult {
  const headers: IncomingHttpHeaders = {};
  const raw: string[] = [];
  for (const [name, value] of pairs) {
    raw.push(name, value);
    const lower = name.toLowerCase();
    if (lower === 'authorization') headers.authorization ??= value;
    else if (lower === 'x-api-key')
      headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
    else headers[lower] = value;
  }
  return extractCredential(headers, raw, url);
}

const code = (result: CredentialResult) => (result.ok ? 'ok' : result.code);

describe('extractCredential: accepted forms', () => {
  it('takes Authorization: Bearer <key>, scheme in any case', () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      assert.deepEqual(request([['Authorization', `${scheme} ${KEY}`]]), {
        ok: true,
        secret: KEY,
        scheme: 'bearer',
      });
    }
  });

  it('finds the header names in any ASCII case, and counts each spelling of them as the same header', () => {
    for (const name of ['AUTHORIZATION', 'authoriZation', 'Authorization']) {
      assert.deepEqual(request([[name, `Bearer ${KEY}`]]), { ok: true, secret: KEY, scheme: 'bearer' });
      assert.equal(
        code(
          request([
            [name, `Bearer ${KEY}`],
            ['authorization', `Bearer ${KEY}`],
          ]),
        ),
        'ERR_AUTH_DUPLICATE',
      );
    }
    for (const name of ['X-API-KEY', 'x-Api-kEy']) {
      assert.deepEqual(request([[name, KEY]]), { ok: true, secret: KEY, scheme: 'x-api-key' });
      assert.equal(
        code(
          request([
            [name, KEY],
            ['X-API-Key', KEY],
          ]),
        ),
        'ERR_AUTH_DUPLICATE',
      );
    }
    // Only ASCII letters have a case: `\r` is not `-` (0x0d | 0x20 is 0x2d), nor the Kelvin sign a `k`.
    const raw = (name: string) => extractCredential({ 'x-api-key': KEY }, [name, KEY], '/mcp');
    for (const near of ['x\rapi-key', 'x-api\rkey', 'x-api-\u212aey', 'x-api-kex'])
      assert.equal(code(raw(near)), 'ERR_AUTH_MISSING');
    assert.equal(code(request([['Authorization', `Bearer\u212a ${KEY}`]])), 'ERR_AUTH_MALFORMED');
  });

  it('takes X-API-Key: <key>', () => {
    assert.deepEqual(request([['X-API-Key', KEY]]), { ok: true, secret: KEY, scheme: 'x-api-key' });
  });

  it('tolerates extra spaces and tabs around the token', () => {
    assert.deepEqual(request([['authorization', ` Bearer \t ${KEY}\t `]]), {
      ok: true,
      secret: KEY,
      scheme: 'bearer',
    });
    assert.deepEqual(request([['x-api-key', `  ${KEY} `]]), { ok: true, secret: KEY, scheme: 'x-api-key' });
  });

  it('takes both headers when they carry the same key', () => {
    const r = request([
      ['Authorization', `Bearer ${KEY}`],
      ['X-API-Key', KEY],
    ]);
    assert.deepEqual(r, { ok: true, secret: KEY, scheme: 'bearer' });
  });

  it('accepts keys minted elsewhere (any visible ASCII)', () => {
    const other = 'sk-live_AbC.123~+/=';
    assert.deepEqual(request([['X-API-Key', other]]), { ok: true, secret: other, scheme: 'x-api-key' });
  });

  it('ignores harmless query parameters', () => {
    assert.equal(code(request([['X-API-Key', KEY]], '/mcp?session=1&keyboard=us&tokens=3')), 'ok');
  });
});

describe('extractCredential: refusals (each with its own audit reason)', () => {
  it('no credential header -> ERR_AUTH_MISSING', () => {
    assert.equal(code(request([['Accept', 'application/json']])), 'ERR_AUTH_MISSING');
  });

  it('empty header -> ERR_AUTH_EMPTY', () => {
    assert.equal(code(request([['Authorization', '']])), 'ERR_AUTH_EMPTY');
    assert.equal(code(request([['X-API-Key', '']])), 'ERR_AUTH_EMPTY');
    assert.equal(code(request([['X-API-Key', '   ']])), 'ERR_AUTH_EMPTY');
  });

  it('`Bearer` with no token (an unset env var) -> ERR_AUTH_EMPTY', () => {
    assert.equal(code(request([['Authorization', 'Bearer']])), 'ERR_AUTH_EMPTY');
    assert.equal(code(request([['Authorization', 'Bearer   ']])), 'ERR_AUTH_EMPTY');
  });

  it('an empty header next to a good one still refuses (fail closed)', () => {
    const r = request([
      ['Authorization', 'Bearer '],
      ['X-API-Key', KEY],
    ]);
    assert.equal(code(r), 'ERR_AUTH_EMPTY');
  });

  it('two Authorization headers -> ERR_AUTH_DUPLICATE (Node keeps only the first)', () => {
    const r = request([
      ['Authorization', `Bearer ${KEY}`],
      ['authorization', 'Bearer other'],
    ]);
    assert.equal(code(r), 'ERR_AUTH_DUPLICATE');
  });

  it('two identical Authorization headers are refused too', () => {
    const r = request([
      ['Authorization', `Bearer ${KEY}`],
      ['Authorization', `Bearer ${KEY}`],
    ]);
    assert.equal(code(r), 'ERR_AUTH_DUPLICATE');
  });

  it('two X-API-Key headers -> ERR_AUTH_DUPLICATE (Node joins them with ", ")', () => {
    const r = request([
      ['X-API-Key', KEY],
      ['x-api-key', 'other'],
    ]);
    assert.equal(code(r), 'ERR_AUTH_DUPLICATE');
  });

  it('Authorization and X-API-Key with different keys -> ERR_AUTH_DUPLICATE', () => {
    const r = request([
      ['Authorization', `Bearer ${KEY}`],
      ['X-API-Key', `${KEY.slice(0, -1)}${KEY.endsWith('x') ? 'y' : 'x'}`],
    ]);
    assert.equal(code(r), 'ERR_AUTH_DUPLICATE');
  });

  it('other schemes and glued schemes -> ERR_AUTH_MALFORMED', () => {
    for (const value of [
      `Basic ${Buffer.from('u:p').toString('base64')}`,
      `Token ${KEY}`,
      `Bearer${KEY}`,
      KEY,
      'Bear',
    ]) {
      assert.equal(code(request([['Authorization', value]])), 'ERR_AUTH_MALFORMED', value);
    }
  });

  it('a token with inner spaces -> ERR_AUTH_MALFORMED', () => {
    assert.equal(code(request([['Authorization', `Bearer ${KEY} extra`]])), 'ERR_AUTH_MALFORMED');
    assert.equal(code(request([['X-API-Key', `${KEY} extra`]])), 'ERR_AUTH_MALFORMED');
  });

  it('non-ASCII and control bytes -> ERR_AUTH_MALFORMED', () => {
    for (const bad of [
      `${KEY}\u00e9`,
      `\u00a0${KEY}`,
      `${KEY}\u00a0`,
      `${KEY}\x00`,
      `${KEY}\x7f`,
      `${KEY}\x1b[0m`,
    ]) {
      assert.equal(
        code(request([['Authorization', `Bearer ${bad}`]])),
        'ERR_AUTH_MALFORMED',
        JSON.stringify(bad),
      );
      assert.equal(code(request([['X-API-Key', bad]])), 'ERR_AUTH_MALFORMED', JSON.stringify(bad));
    }
  });

  it('a 10 KB key -> ERR_AUTH_MALFORMED; 512 is the default limit, raisable for JWTs', () => {
    const huge = 'a'.repeat(10 * 1024);
    assert.equal(code(request([['Authorization', `Bearer ${huge}`]])), 'ERR_AUTH_MALFORMED');
    assert.equal(code(request([['X-API-Key', huge]])), 'ERR_AUTH_MALFORMED');
    assert.equal(code(request([['X-API-Key', 'a'.repeat(512)]])), 'ok');
    assert.equal(code(request([['X-API-Key', 'a'.repeat(513)]])), 'ERR_AUTH_MALFORMED');
    const jwt = 'e'.repeat(2000);
    const r = extractCredential(
      { authorization: `Bearer ${jwt}` },
      ['Authorization', `Bearer ${jwt}`],
      '/mcp',
      {
        maxLength: 8192,
      },
    );
    assert.deepEqual(r, { ok: true, secret: jwt, scheme: 'bearer' });
  });

  it('security: a key in the query string is refused, even beside a valid header', () => {
    for (const url of [
      `/mcp?key=${KEY}`,
      `/mcp?api_key=${KEY}`,
      `/mcp?access_token=${KEY}`,
      `/mcp?token=${KEY}`,
      `/mcp?apikey=${KEY}`,
      `/mcp?a=1&API_KEY=${KEY}`,
      `/mcp?%6Bey=${KEY}`, // percent-encoded "key"
      '/mcp?token=',
      '/mcp?token',
    ]) {
      assert.equal(code(request([], url)), 'ERR_AUTH_KEY_IN_QUERY', url);
      assert.equal(code(request([['Authorization', `Bearer ${KEY}`]], url)), 'ERR_AUTH_KEY_IN_QUERY', url);
    }
  });
});

describe('extractCredential behind a real Node HTTP parser', () => {
  let server: Server;
  let port: number;
  const seen: CredentialResult[] = [];

  before(async () => {
    server = createServer((req, res) => {
      seen.push(extractCredential(req.headers, req.rawHeaders, req.url ?? '/'));
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Sends raw header lines (latin1 bytes), returns what extractCredential said. */
  async function send(lines: string[]): Promise<CredentialResult> {
    const before = seen.length;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end(
          Buffer.from(
            ['GET /mcp HTTP/1.1', 'Host: x', 'Connection: close', ...lines, '', ''].join('\r\n'),
            'latin1',
          ),
        );
      });
      socket.on('data', () => {});
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    assert.equal(seen.length, before + 1, 'the server saw the request');
    return seen[before] as CredentialResult;
  }

  it('security: a second Authorization header, which Node drops from req.headers, is caught', async () => {
    const r = await send([`Authorization: Bearer ${KEY}`, 'Authorization: Bearer attacker']);
    assert.equal(code(r), 'ERR_AUTH_DUPLICATE');
  });

  it('a single header is accepted, and a non-ASCII byte on the wire is refused', async () => {
    assert.deepEqual(await send([`X-API-Key: ${KEY}`]), { ok: true, secret: KEY, scheme: 'x-api-key' });
    assert.equal(code(await send([`X-API-Key: ${KEY}\u00e9`])), 'ERR_AUTH_MALFORMED');
  });
});

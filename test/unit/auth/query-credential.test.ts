/**
 * A key in the query string is refused under any name, bare, or as a JWT, not only under the
 * parameter names other gateways use. Each case shows a way the key or token could be sent.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../../src/auth/key-format.ts';
import { extractCredential } from '../../../src/auth/credentials.ts';
import { hasCredentialInQueryString, looksLikeCredential } from '../../../src/auth/query-credential.ts';

const KEY = mintKey(randomBytes(32));
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const JWT = `${b64({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${b64({ sub: 'u', exp: 2e9 })}.c2lnbmF0dXJlLWJ5dGVz`;
const JWE = `${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a2V5.aXY.Y2lwaGVy.dGFn`;
const NAMES = new Set(['key', 'token']);

/** What the gateway decides for a request to `url` with a valid header beside it. */
function decide(url: string) {
  return extractCredential({ authorization: `Bearer ${KEY}` }, ['Authorization', `Bearer ${KEY}`], url);
}

describe('a credential in the query string, under any name', () => {
  const refused: [string, string][] = [
    ['under an unusual name', `/mcp?auth=${KEY}`],
    ['under an empty name', `/mcp?=${KEY}`],
    ['bare, as the whole query', `/mcp?${KEY}`],
    ['bare, among other parameters', `/mcp?x=1&${KEY}&y=2`],
    ['percent-encoded', `/mcp?q=${encodeURIComponent(KEY).replace('m', '%6D')}`],
    ['upper-cased prefix', `/mcp?q=${KEY.replace('mcpg_', 'MCPG_')}`],
    ['with spaces around it', `/mcp?q=%20${KEY}%20`],
    ['a JWT under any name', `/mcp?session=${JWT}`],
    ['a bare JWT', `/mcp?${JWT}`],
    ['a JWE', `/mcp?x=${JWE}`],
    ['a known name still', '/mcp?access_token=anything'],
    ['a JWT behind a Bearer prefix', `/mcp?authorization=Bearer+${JWT}`],
    ['a JWT behind a Bearer prefix under another name', `/mcp?h=Bearer%20${JWT}`],
    ['a quoted JWT', `/mcp?s=%22${JWT}%22`],
    ['a JWT after a comma or semicolon', `/mcp?x=a;${JWT},b`],
    ['a JWT inside a JSON value', `/mcp?state=${encodeURIComponent(JSON.stringify({ t: JWT }))}`],
    ['a JWT after a dotted prefix', `/mcp?x=v1.${JWT}`],
    ['a JWE inside text', `/mcp?x=(${JWE})`],
    ['a name other gateways use for tokens', '/mcp?jwt=anything'],
    ['the authorization name', '/mcp?Authorization=anything'],
  ];
  for (const [name, url] of refused) {
    it(`refuses a key ${name} (ERR_AUTH_KEY_IN_QUERY, even beside a valid header)`, () => {
      assert.deepEqual(decide(url), { ok: false, code: 'ERR_AUTH_KEY_IN_QUERY' });
    });
  }

  const passed: [string, string][] = [
    ['no query', '/mcp'],
    ['an ordinary parameter', '/mcp?page=2&q=hello'],
    ['a dotted version number', '/mcp?v=1.2.3'],
    ['three dotted words', '/mcp?host=api.example.com'],
    ['three base64url-looking segments whose first is not a JOSE header', '/mcp?x=abcdefghij.klmnop.qrstuv'],
    ['a JOSE header with only one segment after it', `/mcp?x=${JWT.split('.').slice(0, 2).join('.')}`],
    ['a long run of letters and dots', `/mcp?x=${'abcdefgh.'.repeat(500)}`],
  ];
  for (const [name, url] of passed) {
    it(`lets ${name} through`, () => {
      assert.equal(decide(url).ok, true);
    });
  }

  it('looks inside names and values alike', () => {
    assert.equal(hasCredentialInQueryString(`${JWT}=1`, NAMES), true);
    assert.equal(hasCredentialInQueryString('a=1&b=2', NAMES), false);
    assert.equal(looksLikeCredential('eyJhbGciOiJub25lIn0.e30.'), true, 'an unsigned JWT');
    assert.equal(looksLikeCredential('1.2.3'), false);
  });

  it("catches a JWT whose header hides its alg from V8's JSON.parse (a key read as another)", () => {
    // The inner object, built first, gives the outer's second key a way to be misread: Node 24
    // reads the outer `al\u0067` as `al\` after the inner `al\\`; any other parser reads alg.
    const header = String.raw`{"qk${process.pid}":{"qk${process.pid}":1,"al\\":1},"al\u0067":"RS256"}`;
    const misread = JSON.parse(header) as Record<string, unknown>;
    assert.equal(misread.alg, undefined, 'the test must reproduce the misread');
    const jwt = `${Buffer.from(header).toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.c2ln`;
    assert.equal(looksLikeCredential(jwt), true);
    assert.equal(hasCredentialInQueryString(`x=${jwt}`, NAMES), true);
  });
});

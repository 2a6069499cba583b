/**
 * Review of 9d47e66 (looksLikeCredential on query strings, User-Agent, X-Request-Id): a JWT
 * "anywhere" in the text, and a cost linear in the text with a small constant (the User-Agent and
 * the query string are read for every request, before any key is checked).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hasCredentialInQueryString, looksLikeCredential } from '../../../src/auth/query-credential.ts';
import { QUERY_CREDENTIAL_NAMES } from '../../../src/auth/credentials.ts';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const JWT = `${b64({ alg: 'RS256', kid: 'k1', typ: 'JWT' })}.${b64({ sub: 'alice', exp: 9999999999 })}.${'S'.repeat(86)}`;

describe('looksLikeCredential: attacks on the review fixes', () => {
  for (const prefix of ['x-', 'client_', 'a', 'ab', 'abc', 'MyClient/1.0_', 'token-']) {
    it(`finds a JWT right after base64url characters (${JSON.stringify(prefix)} + jwt)`, () => {
      assert.equal(looksLikeCredential(`${prefix}${JWT}`), true);
    });
  }
  it('refuses ?state=<prefix>-<jwt> in a query string', () => {
    assert.equal(hasCredentialInQueryString(`state=x-${JWT}`, QUERY_CREDENTIAL_NAMES), true);
  });

  const budgetMs = 3;
  const cases: [string, string][] = [
    ['8-character segments, 16 KiB', 'aaaaaaaa.'.repeat(1820)],
    ['segments in space-separated runs, 16 KiB', 'aaaaaaaa.b. '.repeat(1365)],
  ];
  for (const [label, text] of cases) {
    it(`checks ${label} in under ${budgetMs} ms`, () => {
      looksLikeCredential(text);
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) looksLikeCredential(text);
      const each = (performance.now() - t0) / 20;
      // Seen on the review machine: ~25 ms each (a thrown JSON.parse per 9 bytes).
      assert.ok(each < budgetMs, `${each.toFixed(2)} ms per check`);
    });
  }
  it(`checks a 16 KiB query string of such segments in under ${budgetMs} ms`, () => {
    const query = ('a=aaaaaaaa.' + '.'.repeat(10) + '&').repeat(760);
    hasCredentialInQueryString(query, QUERY_CREDENTIAL_NAMES);
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) hasCredentialInQueryString(query, QUERY_CREDENTIAL_NAMES);
    const each = (performance.now() - t0) / 20;
    assert.ok(each < budgetMs, `${each.toFixed(2)} ms per check`);
  });
});

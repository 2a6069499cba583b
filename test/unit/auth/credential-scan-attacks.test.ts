/**
 * Review of 9d47e66 (looksLikeCredential on query strings, User-Agent, X-Request-Id): a JWT
 * "anywhere" in the text, and a bounded cost (the User-Agent and the query string are read for
 * every request, before any key is checked).
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

  /**
   * The work per text is bounded by counting it, not timed: the JSON.parse and base64url decodings
   * one check makes (each crafted 16 KiB text below made ~1,800 thrown JSON.parse calls, ~25 ms,
   * before the bound). A text that would need more is taken for a credential (fail closed).
   */
  function counted(check: () => boolean): { parses: number; decodes: number; result: boolean } {
    const parse = JSON.parse;
    const from = Buffer.from;
    let parses = 0;
    let decodes = 0;
    JSON.parse = ((...args: Parameters<typeof JSON.parse>) => (
      parses++,
      parse(...args)
    )) as typeof JSON.parse;
    Buffer.from = ((...args: unknown[]) => {
      if (args[1] === 'base64url') decodes++;
      return (from as (...a: unknown[]) => Buffer)(...args);
    }) as typeof Buffer.from;
    try {
      const result = check();
      return { parses, decodes, result };
    } finally {
      JSON.parse = parse;
      Buffer.from = from;
    }
  }
  const crafted: [string, string, boolean][] = [
    ['8-character segments, 16 KiB', 'aaaaaaaa.'.repeat(1820), false],
    ['segments in space-separated runs, 16 KiB', 'aaaaaaaa.b. '.repeat(1365), false],
    ['braced headers without alg, 16 KiB', `${b64({ a: 1 })}.`.repeat(1300), true],
    ['header starts after other characters, 16 KiB', `x${'ey'.repeat(4000)}.a.b`, true],
    [
      'a plain browser User-Agent',
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0',
      false,
    ],
  ];
  for (const [label, text, closed] of crafted) {
    it(`bounds the work for ${label}`, () => {
      const run = counted(() => looksLikeCredential(text));
      assert.ok(run.parses <= 8, `${run.parses} JSON.parse calls`);
      assert.ok(run.decodes <= 64, `${run.decodes} decodings`);
      assert.equal(run.result, closed, closed ? 'taken for a credential (fail closed)' : 'not a credential');
    });
  }
  it('bounds the work for a 16 KiB query string of such segments', () => {
    const query = ('a=aaaaaaaa.' + '.'.repeat(10) + '&').repeat(760);
    const run = counted(() => hasCredentialInQueryString(query, QUERY_CREDENTIAL_NAMES));
    assert.ok(run.parses <= 8 && run.decodes <= 64, `${run.parses} parses, ${run.decodes} decodings`);
    assert.equal(run.result, false);
  });
});

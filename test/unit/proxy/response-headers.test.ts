import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createResponseHead, listsToken, passHeaderProblem } from '../../../src/proxy/response-headers.ts';

function head(pass: string[] = []) {
  const warnings: string[] = [];
  let now = 0;
  const h = createResponseHead({ pass, warn: (_f, m) => void warnings.push(m), now: () => now });
  return { h, warnings, advance: (ms: number) => void (now += ms) };
}

describe('upstream response head', () => {
  it('passes only the allowlist: Content-Type, Cache-Control, the configured names', () => {
    const { h } = head(['X-Trace-Id']);
    const out = h.headers(200, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'x-trace-id': 't',
      location: '/x',
      'set-cookie': ['a=1'],
      'www-authenticate': 'Bearer',
      server: 's',
      'x-powered-by': 'p',
      'access-control-allow-origin': '*',
      'content-length': '10',
      'mcp-session-id': 'sid',
      'retry-after': '5',
      vary: 'accept',
    });
    assert.deepEqual(out, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'x-trace-id': 't',
    });
    // Retry-After with 429/503 only; a name the Connection header lists is hop-by-hop.
    assert.deepEqual(h.headers(429, { 'retry-after': '5' }), { 'retry-after': '5' });
    assert.deepEqual(h.headers(503, { 'retry-after': '5' }), { 'retry-after': '5' });
    assert.deepEqual(h.headers(200, { connection: 'x-trace-id', 'x-trace-id': 't' }), {});
  });

  it('refuses redirects, 401/403 (one warning a minute) and non-identity encodings', () => {
    const { h, warnings, advance } = head();
    assert.equal(h.refusal(302, {})?.code, 'ERR_UPSTREAM_PROTOCOL');
    assert.equal(h.refusal(401, {})?.code, 'ERR_UPSTREAM_AUTH');
    assert.equal(h.refusal(403, {})?.code, 'ERR_UPSTREAM_AUTH');
    assert.equal(warnings.length, 1);
    advance(60_000);
    h.refusal(401, {});
    assert.equal(warnings.length, 2);
    for (const encoding of ['gzip', 'br', 'identity, gzip', 'identity,deflate']) {
      assert.equal(h.refusal(200, { 'content-encoding': encoding })?.code, 'ERR_UPSTREAM_PROTOCOL');
    }
    for (const encoding of ['identity', ' Identity ', ''])
      assert.equal(h.refusal(200, { 'content-encoding': encoding }), undefined);
    assert.equal(h.refusal(404, {}), undefined);
    assert.equal(h.refusal(200, {}), undefined);
  });

  it('refuses a configured name that describes the upstream or that the gateway writes', () => {
    for (const name of [
      'Location',
      'Set-Cookie',
      'WWW-Authenticate',
      'Server',
      'X-Powered-By',
      'Access-Control-Max-Age',
      'Content-Length',
      'Connection',
      'bad name',
    ]) {
      assert.ok(passHeaderProblem(name), name);
      assert.throws(() => createResponseHead({ pass: [name], warn: () => {}, now: () => 0 }), TypeError);
    }
    assert.equal(passHeaderProblem('X-Trace-Id'), undefined);
  });
});

describe('a name the Connection header lists', () => {
  /** What the allowlist did before the in-place scan: split, trim, lower-case. */
  function reference(value: string | string[], name: string): boolean {
    const text = Array.isArray(value) ? value.join(',') : value;
    return text
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .includes(name);
  }

  it('is found in any case, among others, with spaces, tabs or NBSP around it, in a repeated header', () => {
    const values: (string | string[])[] = [
      'keep-alive',
      'close',
      'X-Trace-Id',
      'keep-alive, x-trace-id',
      'keep-alive,X-TRACE-ID ',
      ' \tx-trace-id\t',
      '\u00a0x-trace-id\u00a0',
      'x-trace-ids',
      'x-trace-i',
      'x-trace-id-x, keep-alive',
      ',,x-trace-id,,',
      '',
      ',',
      'x-trace\u00a0id',
      ['keep-alive', 'x-trace-id'],
      ['keep-alive', 'close'],
    ];
    for (const value of values) {
      for (const name of ['x-trace-id', 'content-type', 'keep-alive']) {
        assert.equal(listsToken(value, name), reference(value, name), `${JSON.stringify(value)} ${name}`);
      }
    }
    const { h } = head(['X-Trace-Id']);
    const upstream = { 'content-type': 'application/json', 'x-trace-id': 't' };
    assert.deepEqual(h.headers(200, { ...upstream, connection: 'keep-alive, X-Trace-Id' }), {
      'content-type': 'application/json',
    });
    assert.deepEqual(h.headers(200, { ...upstream, connection: 'keep-alive' }), upstream);
  });
});

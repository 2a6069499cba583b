/** The Host / Origin rules (DNS rebinding) for each kind of listener, without sockets. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { createSiteCheck, hostCheckEnabled } from '../../../src/pipeline/site.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { createCors } from '../../../src/server/cors.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';

const ctxWith = (headers: IncomingHttpHeaders) => ({ req: { headers } }) as unknown as RequestContext;

function verdict(check: ReturnType<typeof createSiteCheck>, headers: IncomingHttpHeaders): string {
  try {
    check(ctxWith(headers));
    return 'ok';
  } catch (err) {
    assert.ok(isGatewayError(err));
    return err.code;
  }
}

const site = (listenHost: string, allowedHosts: string[] = [], publicUrl?: string, origins: string[] = []) =>
  createSiteCheck({
    listenHost,
    allowedHosts,
    publicUrl: publicUrl === undefined ? undefined : new URL(publicUrl),
    cors: createCors(origins),
  });

describe('site check', () => {
  it('is on for loopback listeners, off for others unless allowed_hosts is set, and off with *', () => {
    assert.equal(hostCheckEnabled('127.0.0.1', []), true);
    assert.equal(hostCheckEnabled('127.0.0.53', []), true);
    assert.equal(hostCheckEnabled('::1', []), true);
    assert.equal(hostCheckEnabled('localhost', []), true);
    // Loopback however spelled (listen.ts resolves a name, or `127.1`, to the address it binds).
    assert.equal(hostCheckEnabled('0:0:0:0:0:0:0:1', []), true);
    assert.equal(hostCheckEnabled('[::1]', []), true);
    assert.equal(hostCheckEnabled('::ffff:127.0.0.1', []), true);
    assert.equal(hostCheckEnabled('::ffff:10.0.0.1', []), false);
    assert.equal(hostCheckEnabled('0.0.0.0', []), false);
    assert.equal(hostCheckEnabled('::', []), false);
    assert.equal(hostCheckEnabled('10.0.0.5', []), false);
    assert.equal(hostCheckEnabled('0.0.0.0', ['mcp.internal']), true);
    assert.equal(hostCheckEnabled('127.0.0.1', ['*']), false);
  });

  it('on a loopback listener serves loopback names (any port), public_url and allowed_hosts only', () => {
    const check = site('127.0.0.1', ['Mcp.Internal', '::1', '10.1.2.3'], 'https://gw.example.com/mcp');
    for (const host of [
      'localhost:8080',
      'localhost',
      '127.0.0.1:1',
      '[::1]:8080',
      'gw.example.com',
      'GW.example.com:443',
      'mcp.internal:9',
      '10.1.2.3',
    ])
      assert.equal(verdict(check, { host }), 'ok', host);
    for (const host of [
      undefined,
      '',
      'evil.example',
      'localhost.evil.example',
      '127.0.0.1.nip.io',
      'localhost:80x',
      '[::1',
      'localhost:8080:1',
      '[::2]:80',
      '127.0.0.2',
    ])
      assert.equal(verdict(check, { host }), 'ERR_HOST_DENIED', String(host));
  });

  it('answers each Host value, repeated or alternating (the last answer is kept for the same value)', () => {
    const check = site('127.0.0.1');
    const sequence: [string | undefined, string][] = [
      ['localhost:8080', 'ok'],
      ['localhost:8080', 'ok'],
      ['evil.example', 'ERR_HOST_DENIED'],
      ['evil.example', 'ERR_HOST_DENIED'],
      ['localhost:8080', 'ok'],
      [undefined, 'ERR_HOST_DENIED'],
      ['localhost:8080', 'ok'],
      ['', 'ERR_HOST_DENIED'],
      ['', 'ERR_HOST_DENIED'],
      ['127.0.0.1:9', 'ok'],
      ['127.0.0.1:9x', 'ERR_HOST_DENIED'],
      ['127.0.0.1:9', 'ok'],
    ];
    for (const [host, expected] of sequence) assert.equal(verdict(check, { host }), expected, String(host));
  });

  it('on 0.0.0.0 serves any Host by default (a container is not locked out), and only the listed ones once allowed_hosts is set', () => {
    assert.equal(verdict(site('0.0.0.0'), { host: 'mcpgate.default.svc:8080' }), 'ok');
    const strict = site('0.0.0.0', ['mcpgate.default.svc']);
    assert.equal(verdict(strict, { host: 'mcpgate.default.svc:8080' }), 'ok');
    assert.equal(verdict(strict, { host: 'localhost:8080' }), 'ok');
    assert.equal(verdict(strict, { host: 'rebind.example' }), 'ERR_HOST_DENIED');
  });

  it('refuses any Origin but the allowed ones and public_url’s, on every kind of listener', () => {
    for (const check of [
      site('127.0.0.1', [], 'https://gw.example.com/mcp', ['https://app.example.com']),
      site('0.0.0.0', [], 'https://gw.example.com/mcp', ['https://App.example.com:443/']),
    ]) {
      assert.equal(verdict(check, { host: 'localhost' }), 'ok');
      assert.equal(verdict(check, { host: 'localhost', origin: 'https://app.example.com' }), 'ok');
      assert.equal(verdict(check, { host: 'localhost', origin: 'https://gw.example.com' }), 'ok');
      for (const origin of [
        'https://evil.example',
        'null',
        'http://app.example.com',
        'https://app.example.com:8443',
        'http://localhost:8080',
      ])
        assert.equal(verdict(check, { host: 'localhost', origin }), 'ERR_ORIGIN_DENIED', origin);
    }
  });
});

/** The request headers toward the upstream: an allowlist, as a flat list that names each header once. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequestHeaders } from '../../../src/proxy/request-headers.ts';

function pairs(list: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i]!, list[i + 1]!]);
  return out;
}

it('forwards the allowlisted client headers and writes its own, each name once', () => {
  const build = createRequestHeaders({
    forward: ['X-Tenant', 'mcp-param-region'],
    staticHeaders: {},
    forwardedHost: () => 'gw.example',
    forwardedProto: 'https',
  });
  const list = build(
    {
      accept: 'application/json',
      'user-agent': 'ua',
      'x-tenant': 't1',
      'mcp-param-region': 'eu',
      authorization: 'Bearer secret',
      cookie: 'c=1',
      'x-forwarded-for': '6.6.6.6',
      'x-http-method-override': 'DELETE',
      'content-type': 'text/plain',
      'content-length': '999',
    },
    '10.0.0.1',
    'rid-1',
    'upstream-session',
    true,
  );
  assert.deepEqual(
    new Map(pairs(list)),
    new Map([
      ['accept', 'application/json'],
      ['user-agent', 'ua'],
      ['x-tenant', 't1'],
      ['mcp-param-region', 'eu'],
      ['x-forwarded-for', '10.0.0.1'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'gw.example'],
      ['x-request-id', 'rid-1'],
      ['accept-encoding', 'identity'],
      ['mcp-session-id', 'upstream-session'],
      ['content-type', 'application/json'],
    ]),
  );
  assert.equal(list.length, 22, 'no name twice (Mcp-Param-* listed in forward_headers too)');
});

it('lets upstream.headers win over a client header and a gateway-written one, without sending both', () => {
  const build = createRequestHeaders({
    forward: [],
    staticHeaders: {
      'User-Agent': 'gateway-ua',
      'X-Forwarded-For': 'fixed',
      'X-Request-Id': 'static-id',
      Authorization: 'Bearer upstream',
    },
    forwardedHost: () => 'gw.example',
    forwardedProto: 'http',
  });
  const list = build(
    { 'user-agent': 'client-ua', authorization: 'Bearer client' },
    '10.0.0.1',
    'rid',
    undefined,
    false,
  );
  const names = pairs(list).map(([n]) => n);
  assert.equal(new Set(names).size, names.length, `a name twice: ${names.join(', ')}`);
  const map = new Map(pairs(list));
  assert.equal(map.get('user-agent'), 'gateway-ua');
  assert.equal(map.get('x-forwarded-for'), 'fixed');
  assert.equal(map.get('x-request-id'), 'static-id');
  assert.equal(map.get('authorization'), 'Bearer upstream');
  assert.equal(map.has('content-type'), false, 'no body, no Content-Type');
});

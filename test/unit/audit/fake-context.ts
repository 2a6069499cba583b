/** Plain-object RequestContexts for the audit and metrics tests. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import type { Principal } from '../../../src/auth/principal.ts';
import { ALLOW_ALL } from '../../../src/policy/grants.ts';

export const SECRETS = {
  authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.sig-SECRET-1',
  apiKey: 'mcpg_live_SECRET2_abcdefghijklmnopqrstuvwxyz',
  cookie: 'session=SECRET3-cookie-value',
};

export function keyPrincipal(name = 'alice', keyId = 'k1a2b3c4'): Principal {
  return { kind: 'key', name, keyId, bindingId: 'hash:' + keyId, grants: ALLOW_ALL, limits: undefined };
}

export function oauthPrincipal(sub = 'user-42@example.com'): Principal {
  return {
    kind: 'oauth',
    name: sub,
    keyId: undefined,
    bindingId: 'iss|' + sub,
    grants: ALLOW_ALL,
    limits: undefined,
  };
}

export function fakeContext(overrides: Partial<RequestContext> = {}, method = 'POST'): RequestContext {
  const req = {
    method,
    headers: {
      host: 'gateway.test',
      'user-agent': 'test-client/1.0',
      authorization: SECRETS.authorization,
      'x-api-key': SECRETS.apiKey,
      cookie: SECRETS.cookie,
      'content-type': 'application/json',
    },
    socket: { remoteAddress: '10.1.2.3' },
  } as unknown as IncomingMessage;
  return {
    requestId: 'req-0001',
    startedAt: Date.UTC(2026, 0, 2, 3, 4, 5, 600),
    startedMono: 1000,
    req,
    res: {} as ServerResponse,
    clientIp: '10.1.2.3',
    principal: keyPrincipal(),
    messages: undefined,
    batch: false,
    calls: [],
    decision: 'allow',
    reason: undefined,
    status: 200,
    upstreamStartMono: undefined,
    upstreamMs: undefined,
    bytesIn: 0,
    bytesOut: 0,
    session: undefined,
    protocolVersion: undefined,
    aborted: false,
    cutByShutdown: false,
    rateLimitFallback: undefined,
    eventsFiltered: undefined,
    rootsWithheld: undefined,
    finished: true,
    pinReports: undefined,
    ...overrides,
  };
}

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSessionBinder } from '../../../../src/auth/session-binding.ts';
import {
  createEndpointSessions,
  MAX_ENDPOINT_BYTES,
  sessionParam,
} from '../../../../src/transport/sse/endpoint.ts';

const secret = randomBytes(32);
const alice = `k:${'a'.repeat(64)}`;
const bob = `k:${'b'.repeat(64)}`;
const UPSTREAM = 'http://10.0.0.7:3001/sse';

describe('HTTP+SSE endpoint sessions', () => {
  const sessions = createEndpointSessions(secret, UPSTREAM, '/sse', randomBytes);

  it("hands out the gateway's own path and a session that resolves to the upstream's endpoint", () => {
    const issued = sessions.issue('/message?sessionId=1f0e', alice);
    assert.ok(issued);
    assert.equal(issued.endpoint, `/sse?session=${issued.session}`);
    assert.ok(!issued.endpoint.includes('message') && !issued.endpoint.includes('10.0.0.7'));
    assert.equal(sessionParam(issued.endpoint), issued.session);
    assert.equal(sessions.resolve(issued.session, alice), '/message?sessionId=1f0e');
  });

  it('hands each stream its own session for the same endpoint (the gateway answers on the one it was handed)', () => {
    const one = sessions.issue('/message', alice)!;
    const two = sessions.issue('/message', alice)!;
    assert.notEqual(one.session, two.session);
    assert.equal(sessions.resolve(one.session, alice), '/message');
    assert.equal(sessions.resolve(two.session, alice), '/message');
  });

  it('takes relative and same-origin absolute endpoints, resolved against the SSE URL', () => {
    const at = (data: string) => sessions.resolve(sessions.issue(data, alice)!.session, alice);
    assert.equal(at('messages?x=1'), '/messages?x=1');
    assert.equal(at('http://10.0.0.7:3001/rpc/messages?session_id=ab'), '/rpc/messages?session_id=ab');
    assert.equal(at('  /m?x=1#frag  '), '/m?x=1');
  });

  it('security: refuses an endpoint on any other origin (the gateway never POSTs elsewhere)', () => {
    for (const data of [
      'http://10.0.0.8:3001/message',
      'https://10.0.0.7:3001/message',
      '//evil.example/message',
      'http://10.0.0.7:3002/message',
      'javascript:alert(1)',
    ]) {
      assert.equal(sessions.issue(data, alice), undefined, data);
    }
    assert.equal(sessions.issue(`/m?${'x'.repeat(MAX_ENDPOINT_BYTES)}`, alice), undefined);
  });

  it('security: a session is refused to another key, when tampered, and from another secret', () => {
    const { session } = sessions.issue('/message?sessionId=1', alice)!;
    assert.equal(sessions.resolve(session, bob), undefined);
    const [encoded, mac] = session.split('.') as [string, string];
    const other = Buffer.from('/admin?sessionId=1').toString('base64url');
    assert.equal(sessions.resolve(`${other}.${mac}`, alice), undefined);
    assert.equal(sessions.resolve(encoded, alice), undefined);
    const elsewhere = createEndpointSessions(randomBytes(32), UPSTREAM, '/sse', randomBytes);
    assert.equal(elsewhere.resolve(session, alice), undefined);
  });

  it('security: neither an Mcp-Session-Id nor this session is accepted as the other', () => {
    const encoded = Buffer.from('/message?sessionId=1').toString('base64url');
    const mcpSession = createSessionBinder(secret).wrap(encoded, alice);
    assert.equal(sessions.resolve(mcpSession, alice), undefined);
    const { session } = sessions.issue('/message?sessionId=1', alice)!;
    assert.equal(createSessionBinder(secret).unwrap(session, alice), undefined);
  });

  it("security: the session is sealed: the client cannot read the upstream's endpoint in it", () => {
    const { session } = sessions.issue('/message?sessionId=1f0e&token=upstream-secret', alice)!;
    for (const part of session.split(/[.~]/))
      assert.ok(!Buffer.from(part, 'base64url').toString('latin1').includes('upstream-secret'));
    assert.equal(sessions.resolve(session, alice), '/message?sessionId=1f0e&token=upstream-secret');
  });

  it('a session signed before endpoints were sealed still resolves (a rolling upgrade)', () => {
    const binder = createSessionBinder(secret, 'mcpgate sse endpoint v1');
    const encoded = Buffer.from('/message?sessionId=1').toString('base64url');
    assert.equal(
      sessions.resolve(binder.wrap(`${encoded}~AAAAAAAAAAAA`, alice), alice),
      '/message?sessionId=1',
    );
    assert.equal(sessions.resolve(binder.wrap(encoded, alice), alice), '/message?sessionId=1');
    assert.equal(sessions.resolve(binder.wrap(`${encoded}~AAAAAAAAAAAA`, alice), bob), undefined);
  });

  it('reads the session parameter only when it is given once', () => {
    assert.equal(sessionParam('/sse?session=abc'), 'abc');
    assert.equal(sessionParam('/sse?x=1&session=abc'), 'abc');
    assert.equal(sessionParam('/sse'), undefined);
    assert.equal(sessionParam('/sse?session='), undefined);
    assert.equal(sessionParam('/sse?session=a&session=b'), undefined);
    assert.equal(sessionParam(undefined), undefined);
  });
});

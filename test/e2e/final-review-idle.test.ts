/**
 * Final review (7009474..HEAD): the clientError hook (src/server/client-error.ts) records "a request
 * Node's HTTP parser refuses". A TCP connection that never sends a byte (a browser's preconnect, a
 * load balancer's or a port scanner's open socket) is no request, yet when Node times it out
 * (headersTimeout, seen at its next connections check: about 30 s here) the hook writes an audit line
 * `decision: invalid, status: 408, bytes_in: 0`. README: "One JSON line per HTTP request".
 * Fix: in the hook, answer and destroy such a socket as now, but write no line when
 * `socket.bytesRead === 0` (nothing was sent, so nothing was refused).
 * Slow by nature (Node checks connections every 30 s); it asserts no time, only the lines.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { answerRequests, startRawUpstreamGateway } from '../helpers/raw-upstream.ts';

it('final review: a connection that never sends a byte writes no audit line', async () => {
  const raw = await startRawUpstreamGateway(
    answerRequests((_m, res) => res.end('{}')),
    `k${randomBytes(8).toString('hex')}`,
    ['*'],
  );
  try {
    const u = new URL(raw.gateway.mcpUrl);
    // Wait until the gateway closes the idle connection (Node's request timeout).
    await new Promise<void>((resolve) => {
      const socket = connect(Number(u.port), u.hostname);
      socket.on('data', () => {});
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(raw.gateway.auditLines, []);
  } finally {
    await raw.close();
  }
});

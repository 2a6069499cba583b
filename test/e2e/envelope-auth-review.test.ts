/**
 * Review (envelope, authentication, audit): attacks on what the upstream receives, on getting past
 * authentication, and on the audit promise (one line per request, never a key or token in it).
 *
 * "hole: ..." tests failed on the code they were written against (7ae4d0c); "holds: ..." tests
 * pass and cover a path no other test covers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startRawUpstream, raw, statuses, keyedConfig, clientHeaders } from '../helpers/raw-http.ts';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { newKey } from '../helpers/review-config.ts';
import { waitFor } from '../helpers/net.ts';

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A JWT-shaped string (a JOSE header, claims, a signature segment): what a token looks like. */
const jwtLike = (sub: string) =>
  `${b64url({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${b64url({ sub, exp: 9999999999 })}.c2lnbmF0dXJl`;

function post(port: number, secret: string, body: string, extra = ''): string {
  return (
    `POST /mcp HTTP/1.1\r\n${clientHeaders(port, secret)}${extra}Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: close\r\n\r\n${body}`
  );
}

describe('review: tool arguments in the audit line (audit.log_arguments: true)', () => {
  const secret = newKey();
  const other = newKey();
  const token = jwtLike('victim');
  let upstream: RawUpstream;
  let gateway: TestGateway;
  let port: number;

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(
      keyedConfig(upstream.url, secret, { extra: { audit: { log_arguments: true } } }),
    );
    port = Number(new URL(gateway.url).port);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it('hole: a key or a token given as an argument value (or name) under a field the redaction list does not name is written to the audit line', async () => {
    const mark = gateway.auditLines.length;
    const args = {
      query: other, // another key, pasted into a search box
      url: `https://api.example.com/v1/items?access=${token}`, // a token in a URL's query
      headers: [`Bearer ${token}`], // in an array
      [secret]: 'x', // the key as a member name
      note: 'kept', // the control: a plain argument is still logged
    };
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: args },
    });
    const r = await raw(port, post(port, secret, body));
    assert.deepEqual(statuses(r.text), [200]);
    await waitFor(() => (gateway.auditLines.length > mark ? true : undefined), 2000);
    const line = gateway.auditLines[mark] as Record<string, unknown>;
    const text = JSON.stringify(line);
    assert.equal(line.tool, 'echo');
    assert.equal((line.arguments as Record<string, unknown>).note, 'kept', 'plain arguments are logged');
    assert.ok(!text.includes(other), 'a key given as an argument value is not in the audit line');
    assert.ok(!text.includes(secret), 'a key given as an argument name is not in the audit line');
    assert.ok(
      !text.includes(token.split('.')[1] as string),
      'a token in an argument value is not in the audit line',
    );
  });
});

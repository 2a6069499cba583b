/**
 * Fixtures of the HTTP+SSE e2e tests against the hand-driven upstream: one key allowed `echo`, the
 * gateway config, a POST with that key, and upstream events.
 */
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';

export const KEY = mintKey(randomBytes(32));

export function config(upstreamUrl: string): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
  transport: sse
streams:
  keepalive: 150ms
auth:
  session_secret: "${'b'.repeat(40)}"
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [echo]
`;
}

export const notification = (text: string) =>
  `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: text } })}\n\n`;

export const TOOLS = [
  { name: 'echo', inputSchema: { type: 'object' } },
  { name: 'secret', inputSchema: { type: 'object' } },
  { name: 'admin-reset', inputSchema: { type: 'object' } },
];

export function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

export const tick = () => new Promise((r) => setImmediate(r));

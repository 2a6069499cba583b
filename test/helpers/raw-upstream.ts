/**
 * A raw node:http upstream (the test writes the exact bytes it answers with) behind a gateway with
 * one API key, allowed `allow`. For tests that need bytes no SDK server would send.
 */
import { createServer } from 'node:http';
import type { RequestListener, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from './gateway.ts';
import type { TestGateway } from './gateway.ts';

export interface RawUpstreamGateway {
  readonly gateway: TestGateway;
  /** The upstream's MCP URL (for a config to reload with, rawUpstreamConfig). */
  readonly upstreamUrl: string;
  /** Stops the gateway, then the upstream. */
  close(): Promise<void>;
}

export async function startRawUpstreamGateway(
  answer: RequestListener,
  key: string,
  allow: readonly string[],
): Promise<RawUpstreamGateway> {
  const http = createServer(answer);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  const gateway = await startTestGateway(rawUpstreamConfig(url, key, allow));
  return {
    gateway,
    upstreamUrl: url,
    async close() {
      await gateway.close(200);
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/**
 * An upstream listener that reads each POST body as one JSON-RPC message: a notification (no id) is
 * answered 202, a request is handed to `answer` with its id.
 */
export function answerRequests(
  answer: (message: { id: string; method: string }, res: ServerResponse) => void,
): RequestListener {
  return (req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const message = JSON.parse(text) as { id?: string; method: string };
      if (message.id === undefined) return void res.writeHead(202).end();
      answer({ id: message.id, method: message.method }, res);
    });
  };
}

/** The session secret of rawUpstreamConfig (tests seal event ids with it: event-ids.ts). */
export const RAW_SESSION_SECRET = 's'.repeat(40);

/** The gateway's config: the upstream at `url`, one API key allowed `allow`. */
export function rawUpstreamConfig(url: string, key: string, allow: readonly string[]): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${RAW_SESSION_SECRET}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(key)}"
    allow: ${JSON.stringify(allow)}
`;
}

/** POSTs `body`, as written, through the gateway, as `key` (`signal` aborts it). */
export function postBody(
  raw: RawUpstreamGateway,
  key: string,
  body: string,
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(raw.gateway.mcpUrl, {
    method: 'POST',
    signal,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${key}`,
    },
    body,
  });
}

/** POSTs a `tools/call` of `name` (no arguments) with request id `id` through the gateway, as `key`. */
export function callTool(
  raw: RawUpstreamGateway,
  key: string,
  id: unknown,
  name = 'echo',
): Promise<Response> {
  return postBody(
    raw,
    key,
    JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } }),
  );
}

/** An upstream listener that reads each request's whole body, then answers it. */
export function withBody(answer: (raw: Buffer, res: ServerResponse) => void): RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => answer(Buffer.concat(chunks), res));
  };
}

/** An upstream listener that reads each request's body and answers it knowing its id (the gateway's tag). */
export function answerTagged(answer: (tag: string, res: ServerResponse) => void): RequestListener {
  return withBody((raw, res) => answer((JSON.parse(raw.toString()) as { id: string }).id, res));
}

/**
 * The bench's own MCP client pieces: sessions, one-off calls to check a target answers correctly
 * before it is measured, SSE first-event timing and many idle GET streams.
 */
import { request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { Client, Pool } from 'undici';

export const PROTOCOL_VERSION = '2025-06-18';
export const BASE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': PROTOCOL_VERSION,
});

export const rpc = (id: number, method: string, params?: unknown) =>
  JSON.stringify(
    params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params },
  );

export interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly sessionId: string | undefined;
  /** JSON-RPC messages in the body, whether it was JSON or an SSE stream. */
  readonly messages: readonly Record<string, unknown>[];
}

function parseMessages(contentType: string, text: string): Record<string, unknown>[] {
  if (text === '') return [];
  try {
    if (contentType.includes('text/event-stream')) {
      return text
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);
    }
    const parsed = JSON.parse(text) as Record<string, unknown> | Record<string, unknown>[];
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    return [];
  }
}

export async function post(
  url: string,
  headers: Readonly<Record<string, string>>,
  body: string,
): Promise<Reply> {
  const u = new URL(url);
  const client = new Client(u.origin);
  try {
    const res = await client.request({ path: u.pathname, method: 'POST', headers: { ...headers }, body });
    const text = await res.body.text();
    const contentType = String(res.headers['content-type'] ?? '');
    const session = res.headers['mcp-session-id'];
    return {
      status: res.statusCode,
      contentType,
      sessionId: typeof session === 'string' ? session : undefined,
      messages: parseMessages(contentType, text),
    };
  } finally {
    await client.close();
  }
}

/**
 * initialize + notifications/initialized, as a real client does; returns the headers to send
 * afterwards (with the session id, when one was issued).
 */
export async function openSession(
  url: string,
  headers: Readonly<Record<string, string>>,
): Promise<Record<string, string>> {
  const init = await post(
    url,
    headers,
    rpc(1, 'initialize', {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'mcpgate-bench', version: '1.0.0' },
    }),
  );
  const result = init.messages[0]?.result;
  if (init.status !== 200 || result === undefined) {
    throw new Error(
      `initialize via ${url} failed: HTTP ${init.status} ${JSON.stringify(init.messages[0] ?? null)}`,
    );
  }
  const next: Record<string, string> = { ...headers };
  if (init.sessionId !== undefined) next['mcp-session-id'] = init.sessionId;
  const ack = await post(url, next, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  if (ack.status !== 202 && ack.status !== 200)
    throw new Error(`notifications/initialized via ${url}: HTTP ${ack.status}`);
  return next;
}

/** Sends `body` once and throws unless the answer is HTTP 200 with a message `check` accepts. */
export async function expectReply(
  what: string,
  url: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  check: (message: Record<string, unknown>) => string | undefined,
): Promise<Record<string, unknown>> {
  const reply = await post(url, headers, body);
  const message = reply.messages.find((m) => 'result' in m || 'error' in m);
  const problem =
    reply.status !== 200
      ? `HTTP ${reply.status}`
      : message === undefined
        ? 'no JSON-RPC response'
        : check(message);
  if (problem !== undefined) {
    throw new Error(`${what}: ${problem} (${JSON.stringify(message ?? reply.messages).slice(0, 300)})`);
  }
  return message as Record<string, unknown>;
}

export interface StreamTiming {
  /** Microseconds from sending the request to the first body bytes (the progress event). */
  readonly first: number[];
  /** Microseconds to the end of the response (the result event, after the origin's delay). */
  readonly total: number[];
}

/** Sequential SSE tools/calls on one keep-alive connection, timing first event and end. */
export async function sseTimings(
  url: string,
  headers: Readonly<Record<string, string>>,
  samples: number,
  delayMs: number,
): Promise<StreamTiming> {
  const u = new URL(url);
  const client = new Client(u.origin, { pipelining: 1 });
  const first: number[] = [];
  const total: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const body = rpc(i + 1, 'tools/call', {
        name: 'stream',
        arguments: { delay_ms: delayMs },
        _meta: { progressToken: `p${i}` },
      });
      const t0 = performance.now();
      const res = await client.request({ path: u.pathname, method: 'POST', headers: { ...headers }, body });
      let t1 = 0;
      let text = '';
      for await (const chunk of res.body) {
        if (t1 === 0) t1 = performance.now();
        text += (chunk as Buffer).toString();
      }
      const t2 = performance.now();
      if (res.statusCode !== 200 || !String(res.headers['content-type']).includes('text/event-stream')) {
        throw new Error(
          `SSE tools/call via ${url}: HTTP ${res.statusCode} ${String(res.headers['content-type'])}`,
        );
      }
      if (!text.includes('notifications/progress') || !text.includes('"ok"')) {
        throw new Error(`SSE tools/call via ${url}: unexpected body ${text.slice(0, 200)}`);
      }
      first.push((t1 - t0) * 1000);
      total.push((t2 - t0) * 1000);
    }
  } finally {
    await client.close();
  }
  return { first, total };
}

export interface IdleStreams {
  readonly count: number;
  close(): void;
}

/**
 * Opens `count` sessions, each with its GET SSE stream on its own socket, `concurrency` at a time.
 * A stream counts as open once its 200 text/event-stream headers arrived.
 */
export async function openIdleStreams(
  url: string,
  headers: Readonly<Record<string, string>>,
  count: number,
  concurrency = 16,
): Promise<IdleStreams> {
  const u = new URL(url);
  const requests: ClientRequest[] = [];
  const pool = new Pool(u.origin, { connections: concurrency });
  const openOne = async (): Promise<void> => {
    const init = await pool.request({
      path: u.pathname,
      method: 'POST',
      headers: { ...headers },
      body: rpc(1, 'initialize', {
        protocolVersion: PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: { name: 'bench', version: '1' },
      }),
    });
    await init.body.text();
    const session = init.headers['mcp-session-id'];
    const getHeaders: Record<string, string> = { ...headers, accept: 'text/event-stream' };
    delete getHeaders['content-type'];
    if (typeof session === 'string') getHeaders['mcp-session-id'] = session;
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'GET',
      headers: getHeaders,
      agent: false,
    });
    requests.push(req);
    req.on('error', () => {});
    req.end();
    const [res] = (await once(req, 'response', { signal: AbortSignal.timeout(10_000) }).catch(() => {
      throw new Error(`GET stream ${requests.length} via ${url}: no response headers within 10 s`);
    })) as [IncomingMessage];
    res.resume();
    if (res.statusCode !== 200 || !String(res.headers['content-type']).includes('text/event-stream')) {
      throw new Error(`GET stream via ${url}: HTTP ${res.statusCode} ${String(res.headers['content-type'])}`);
    }
  };
  const close = () => {
    for (const req of requests) req.destroy();
  };
  try {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next++;
        await openOne();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  } catch (err) {
    close();
    throw err;
  } finally {
    await pool.close();
  }
  return { count, close };
}

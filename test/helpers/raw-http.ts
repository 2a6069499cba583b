/**
 * Raw HTTP/1.1 on sockets, for the attack tests of the gateway's connection handling (pipelining,
 * CONNECT, request targets): a recording upstream, a one-shot client, an open client socket, and
 * readers of what came back.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { sha256Hex } from '../../src/auth/key-hash.ts';

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export type RawUpstream = Awaited<ReturnType<typeof startRawUpstream>>;

/**
 * An MCP-ish upstream that records every request (`seen`) and any CONNECT or Upgrade (`events`).
 * A POST is answered by echoing its id after `params.delay` ms (a negative delay: the answer is cut
 * after its first bytes, that many ms later); a notification gets 202; a GET is held open as an SSE
 * stream; an OPTIONS (the readiness probe) is answered after `state.optionsDelay` ms.
 */
export async function startRawUpstream() {
  const seen: Seen[] = [];
  const events: string[] = [];
  const state = { optionsDelay: 0, posts: 0, options: 0 };
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (req.method === 'OPTIONS') {
      state.options++;
      setTimeout(() => res.writeHead(200).end(), state.optionsDelay);
      return;
    }
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': open\n\n');
      open.add(res);
      res.on('close', () => open.delete(res));
      return;
    }
    if (req.method !== 'POST') return void res.writeHead(200).end();
    state.posts++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
        id?: unknown;
        params?: { delay?: number };
      };
      if (parsed.id === undefined) return void res.writeHead(202).end();
      const delay = parsed.params?.delay ?? 0;
      if (delay < 0) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"jsonrpc":"2.0"');
        setTimeout(() => res.socket?.destroy(), -delay);
        return;
      }
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: parsed.id, result: {} }));
      }, delay);
    });
  });
  server.on('connect', (req, socket) => {
    events.push(`connect ${req.url}`);
    socket.destroy();
  });
  server.on('upgrade', (req, socket) => {
    events.push(`upgrade ${req.url}`);
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    seen,
    events,
    state,
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface RawResult {
  /** Everything the gateway sent, as latin1 text. */
  readonly text: string;
  /** The gateway closed (or reset) the connection before the wait ended. */
  readonly closed: boolean;
  readonly ms: number;
}

/**
 * Writes `data` (latin1) on a fresh connection and collects what comes back until the gateway
 * closes the connection or `waitMs` passes (then the client destroys its socket).
 */
export function raw(port: number, data: string, waitMs = 2500): Promise<RawResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let text = '';
    let closed = false;
    const socket = connect(port, '127.0.0.1', () => socket.write(data, 'latin1'));
    const timer = setTimeout(() => finish(false), waitMs);
    function finish(byServer: boolean) {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed: byServer, ms: Date.now() - t0 });
    }
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('end', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

/** An open client socket whose received text (`text`) and state (`closed`) are readable at any time. */
export async function openSocket(port: number, allowHalfOpen = false) {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen });
  const state = { text: '', closed: false, socket };
  socket.on('data', (d: Buffer) => (state.text += d.toString('latin1')));
  socket.on('error', () => {});
  socket.on('close', () => (state.closed = true));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  return state;
}

/** The status of every response in `text`, in order. */
export function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** An audit line in short: request id, method, status, decision, and whether it was aborted. */
export const short = (l: Record<string, unknown>) =>
  `${String(l.request_id)} ${String(l.http_method)} ${String(l.status)} ${String(l.decision)}${l.aborted === true ? ' aborted' : ''}`;

/**
 * The config of a gateway on `listen` in front of `upstreamUrl` with one key, `k`, for `secret`
 * (allowed `*`, `key` merged into it), and `extra` top-level sections.
 */
export function keyedConfig(
  upstreamUrl: string,
  secret: string,
  { extra = {}, key = {}, listen = '127.0.0.1:0' }: { extra?: object; key?: object; listen?: string } = {},
): string {
  return JSON.stringify({
    listen,
    upstream: { url: upstreamUrl },
    auth: { session_secret: 'x'.repeat(40) },
    keys: [{ label: 'k', hash: `sha256:${sha256Hex(secret)}`, allow: ['*'], ...key }],
    ...extra,
  });
}

/** The header lines (each ending in CRLF) a client that is let in sends to the gateway on `port`. */
export function clientHeaders(port: number, secret: string): string {
  return (
    `Host: 127.0.0.1:${port}\r\nAuthorization: Bearer ${secret}\r\n` +
    `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n`
  );
}

/** A ping POST with `headers`, which the raw upstream answers after `delay` ms. */
export function pingPost(headers: string, id: number | string, delay = 0, rid = `p${id}`): string {
  const b = JSON.stringify({ jsonrpc: '2.0', id, method: 'ping', params: { delay } });
  return `POST /mcp HTTP/1.1\r\n${headers}X-Request-Id: ${rid}\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
}

/**
 * A client on a raw socket, for tests that must control what it reads and when: the request written
 * as bytes, the answer kept as latin1 text as it comes.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { ACCEPT } from './open-request.ts';

/** A request to `u`'s path with a bearer key (GET: an SSE stream; a body: JSON). */
export function rawRequest(u: URL, method: string, key: string, body?: string): string {
  return (
    `${method} ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${key}\r\n` +
    `Accept: ${method === 'GET' ? 'text/event-stream' : ACCEPT}\r\n` +
    (body !== undefined
      ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
      : '') +
    `\r\n${body ?? ''}`
  );
}

export interface RawClient {
  readonly socket: Socket;
  /** What it received so far. */
  text(): string;
  closed(): boolean;
}

/** A socket to `u`; `paused`: it reads nothing until `socket.resume()`. */
export function rawClient(u: URL, { paused = false } = {}): RawClient {
  const socket = connect(Number(u.port), u.hostname);
  let text = '';
  let closed = false;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  if (paused) socket.pause();
  return { socket, text: () => text, closed: () => closed };
}

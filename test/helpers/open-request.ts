/**
 * Requests whose answers are read as they come (streams that stay open), and the JSON POST with a
 * key that the review files send: shared by the e2e attack reviews.
 */
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Seen } from './scripted-upstream.ts';

export const ACCEPT = 'application/json, text/event-stream';

/** An open streamed response: its status, the text received so far, and a way to end it. */
export interface OpenStream {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  text(): string;
  ended(): boolean;
  close(): void;
}

/** Sends a request and resolves once the response head arrives; the body keeps accumulating. */
export function openRequest(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      let done = false;
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => (done = true));
      res.on('close', () => (done = true));
      res.on('error', () => (done = true));
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        text: () => text,
        ended: () => done,
        close: () => req.destroy(),
      });
    });
    req.end(body);
  });
}

/** The Authorization and Accept headers of a key's request. */
export function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}`, accept: ACCEPT };
}

/** POSTs a JSON body with `key`; resolves with the status and the whole text. */
export async function postJson(
  url: string,
  key: string,
  body: string,
  extra: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...bearer(key), 'content-type': 'application/json', ...extra },
    body,
    ...(signal ? { signal } : {}),
  });
  return { status: res.status, text: await res.text() };
}

/** Answers a request as a JSON body with the id the upstream received (the gateway's tag). */
export function answerJson(seen: Seen, res: ServerResponse, result: unknown = {}): void {
  const id = (seen.body as { id?: unknown } | undefined)?.id;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', id, result }));
}

/**
 * An upstream whose answers each test writes by hand (the exact bytes and headers), recording every
 * request it received: method, URL, headers, the raw body and its JSON.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly raw: string;
  readonly body: unknown;
}

export type Script = (seen: Seen, res: ServerResponse) => void;

export interface ScriptedUpstream {
  /** The MCP endpoint: http://127.0.0.1:PORT/mcp */
  readonly url: string;
  /** Every request received, in order. */
  readonly seen: Seen[];
  /** How the next requests are answered (until set again); a 500 before the first call. */
  set(script: Script): void;
  close(): Promise<void>;
}

export async function startScriptedUpstream(): Promise<ScriptedUpstream> {
  let script: Script = (_seen, res) => void res.writeHead(500).end();
  const seen: Seen[] = [];
  const http: HttpServer = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
    req.on('end', () => {
      const entry = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        raw,
        body: raw ? (JSON.parse(raw) as unknown) : undefined,
      };
      seen.push(entry);
      script(entry, res);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    seen,
    set: (s) => void (script = s),
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

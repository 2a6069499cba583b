/**
 * A hand-driven HTTP+SSE (2024-11-05) upstream for byte-level tests: `GET <path>` opens the stream
 * and sends the `endpoint` event the test chose; POSTs to that endpoint are recorded and answered
 * 202; everything else on the stream is written by the test itself (`write`), byte for byte, when it
 * wants (split chunks, multi-line data, events nobody asked for).
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RawPost {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface RawSseUpstream {
  /** The SSE URL (`upstream.url`). */
  readonly url: string;
  readonly origin: string;
  readonly posts: RawPost[];
  /** GET streams opened so far; `closed` turns true when the gateway hung one up. */
  readonly streams: { res: ServerResponse; closed: boolean }[];
  /** Writes bytes on the latest stream. */
  write(bytes: string | Buffer): void;
  /** Resolves with the next POST's parsed body (once it has arrived). */
  nextPost(): Promise<unknown>;
  close(): Promise<void>;
}

export async function startRawSseUpstream(endpoint: (origin: string) => string): Promise<RawSseUpstream> {
  const posts: RawPost[] = [];
  const streams: { res: ServerResponse; closed: boolean }[] = [];
  const waiting: ((value: unknown) => void)[] = [];
  let origin = '';
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/legacy/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(`event: endpoint\r\ndata: ${endpoint(origin)}\r\n\r\n`);
      const stream = { res, closed: false };
      streams.push(stream);
      res.on('close', () => (stream.closed = true));
      return;
    }
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        posts.push({ path: req.url ?? '', headers: req.headers, body });
        res.writeHead(202, { 'content-type': 'text/plain' }).end('Accepted');
        waiting.shift()?.(JSON.parse(body));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/legacy/sse`,
    origin,
    posts,
    streams,
    write(bytes) {
      const latest = streams.at(-1);
      if (latest === undefined) throw new Error('no stream open');
      latest.res.write(bytes);
    },
    nextPost: () => new Promise((resolve) => waiting.push(resolve)),
    async close() {
      for (const s of streams) s.res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

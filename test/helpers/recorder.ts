/**
 * A recording HTTP forwarder for upstreams the test cannot look inside (server-everything runs as a
 * child process): put it between the gateway and the server, point `upstream.url` at `recorder.url`,
 * and read `received` to assert what the server was sent (and answered). Requests and responses
 * stream through untouched (status, headers, SSE events as they arrive, aborts both ways); each
 * body is copied as it passes.
 */
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { ClientRequest, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The request body as received; complete once `complete` is true. */
  body: string;
  complete: boolean;
  /** The server's status, and its response body as it has arrived so far (latin1: one char a byte). */
  status: number;
  response: string;
}

/** A JSON-RPC message the server was sent (one element of a batch counts as one). */
export interface SentMessage {
  readonly id?: unknown;
  readonly method?: string;
  readonly params?: { readonly name?: unknown; readonly uri?: unknown; readonly [key: string]: unknown };
}

export interface Recorder {
  /** The target's path on the recorder's origin: use it as the gateway's `upstream.url`. */
  readonly url: string;
  /** Every request, in the order it arrived (recorded as soon as its head arrives). */
  readonly received: Recorded[];
  /** The JSON-RPC messages of every POST body, in order. */
  messages(): SentMessage[];
  close(): Promise<void>;
}

/** Headers that belong to one connection, not to the message. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
]);

function forwardable(headers: IncomingHttpHeaders, host?: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  if (host !== undefined) out.host = host;
  return out;
}

export async function startRecorder(targetUrl: string): Promise<Recorder> {
  const target = new URL(targetUrl);
  const agent = new Agent({ keepAlive: true });
  const received: Recorded[] = [];
  const outgoing = new Set<ClientRequest>();

  const server = createServer((req, res) => {
    const record: Recorded = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body: '',
      complete: false,
      status: 0,
      response: '',
    };
    received.push(record);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      record.body = Buffer.concat(chunks).toString('utf8');
      record.complete = true;
    });

    const upstream = httpRequest({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: forwardable(req.headers, target.host),
      agent,
    });
    outgoing.add(upstream);
    upstream.on('close', () => outgoing.delete(upstream));
    upstream.on('response', (answer) => {
      record.status = answer.statusCode ?? 502;
      res.writeHead(record.status, forwardable(answer.headers));
      // An SSE client must see the stream open before the first event.
      res.flushHeaders();
      answer.on('data', (chunk: Buffer) => (record.response += chunk.toString('latin1')));
      answer.pipe(res);
      answer.on('aborted', () => res.destroy());
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => {
      if (res.headersSent) res.destroy();
      else res.writeHead(502).end();
    });
    // The gateway left (or aborted the request): abort the request to the server too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${target.pathname}${target.search}`,
    received,
    messages() {
      return received
        .filter((r) => r.method === 'POST' && r.body !== '')
        .flatMap((r) => {
          const value = JSON.parse(r.body) as unknown;
          return (Array.isArray(value) ? value : [value]) as SentMessage[];
        });
    },
    async close() {
      for (const request of outgoing) request.destroy();
      server.closeAllConnections();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

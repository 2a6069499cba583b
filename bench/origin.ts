/**
 * The fast origin: a minimal node:http MCP-ish server (not the SDK, which would be the bottleneck).
 * Run in its own process: `node bench/origin.ts [--port 0] [--tools 1000]`; prints `{"port":N}`.
 *
 * POST /mcp (JSON-RPC, single or batch):
 *   initialize         -> result + a fresh `Mcp-Session-Id` header
 *   tools/list         -> the pre-serialized catalogue of N tools
 *   tools/call         -> {"content":[{"type":"text","text":"ok"}]} as application/json, or, for the
 *                         tool named `stream`, a text/event-stream: a notifications/progress event,
 *                         `arguments.delay_ms` (default 50) of silence, then the result event; for
 *                         the tool named `reset`, response headers and then a reset connection
 *   tools/list         -> with params._meta.chunks "tiny": the same catalogue, chunked, 64 bytes
 *                         (not a cursor: the gateway forwards only cursors it sealed)
 *                         a chunk (the soak's hostile upstream)
 *   ping               -> {}
 *   notifications      -> 202
 * GET /mcp             -> an SSE stream that stays open (headers flushed, no events)
 * DELETE /mcp          -> 200
 * GET /stats           -> {"streams": open GET streams, "requests": POSTs answered}
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { makeTools } from './tools.ts';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '0' }, tools: { type: 'string', default: '1000' } },
});
const toolsJson = JSON.stringify({ tools: makeTools(Number(values.tools)) });
const OK_RESULT = '{"content":[{"type":"text","text":"ok"}]}';
const JSON_HEADERS = { 'content-type': 'application/json' };
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

let streams = 0;
let requests = 0;

interface Message {
  jsonrpc?: unknown;
  id?: unknown;
  method?: unknown;
  params?: { name?: unknown; arguments?: { delay_ms?: unknown }; _meta?: { progressToken?: unknown } };
}

const reply = (id: unknown, result: string) =>
  `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${result}}`;

/** The JSON text of a response to one request, or undefined for a notification or response. */
function answer(msg: Message, res: ServerResponse): string | undefined {
  if (msg === null || typeof msg !== 'object' || msg.id === undefined || typeof msg.method !== 'string') {
    return undefined;
  }
  switch (msg.method) {
    case 'tools/call':
      return reply(msg.id, OK_RESULT);
    case 'tools/list':
      return reply(msg.id, toolsJson);
    case 'initialize': {
      res.setHeader('mcp-session-id', randomUUID());
      const version = (msg.params as { protocolVersion?: unknown } | undefined)?.protocolVersion;
      return reply(
        msg.id,
        JSON.stringify({
          protocolVersion: typeof version === 'string' ? version : '2025-06-18',
          capabilities: { tools: { listChanged: false } },
          serverInfo: { name: 'bench-origin', version: '1.0.0' },
        }),
      );
    }
    case 'ping':
      return reply(msg.id, '{}');
    default:
      return `{"jsonrpc":"2.0","id":${JSON.stringify(msg.id)},"error":{"code":-32601,"message":"Method not found"}}`;
  }
}

function streamCall(msg: Message, res: ServerResponse): void {
  const token = msg.params?._meta?.progressToken ?? 'bench';
  const delay = Number(msg.params?.arguments?.delay_ms ?? 50);
  res.writeHead(200, SSE_HEADERS);
  const progress = {
    jsonrpc: '2.0',
    method: 'notifications/progress',
    params: { progressToken: token, progress: 0, total: 1 },
  };
  res.write(`event: message\ndata: ${JSON.stringify(progress)}\n\n`);
  const timer = setTimeout(() => res.end(`event: message\ndata: ${reply(msg.id, OK_RESULT)}\n\n`), delay);
  res.on('close', () => clearTimeout(timer));
}

function onPost(req: IncomingMessage, res: ServerResponse, text: string): void {
  requests++;
  let parsed: Message | Message[];
  try {
    parsed = JSON.parse(text) as Message | Message[];
  } catch {
    res
      .writeHead(400, JSON_HEADERS)
      .end('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
    return;
  }
  if (!Array.isArray(parsed) && parsed?.method === 'tools/call' && parsed.params?.name === 'stream') {
    streamCall(parsed, res);
    return;
  }
  if (!Array.isArray(parsed) && parsed?.method === 'tools/call' && parsed.params?.name === 'reset') {
    res.writeHead(200, JSON_HEADERS);
    res.flushHeaders();
    setTimeout(() => res.socket?.resetAndDestroy(), 5);
    return;
  }
  if (
    !Array.isArray(parsed) &&
    parsed?.method === 'tools/list' &&
    (parsed.params as { _meta?: { chunks?: unknown } } | undefined)?._meta?.chunks === 'tiny'
  ) {
    tinyChunks(res, Buffer.from(reply(parsed.id, toolsJson)));
    return;
  }
  let body: string | undefined;
  if (Array.isArray(parsed)) {
    const parts = parsed.map((m) => answer(m, res)).filter((p) => p !== undefined);
    body = parts.length > 0 ? `[${parts.join(',')}]` : undefined;
  } else {
    body = answer(parsed, res);
  }
  if (body === undefined) res.writeHead(202).end();
  else
    res
      .writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      .end(body);
}

/** Writes a body 64 bytes a chunk (chunked encoding), yielding between batches of 256 chunks. */
function tinyChunks(res: ServerResponse, body: Buffer): void {
  res.writeHead(200, JSON_HEADERS);
  let at = 0;
  const batch = () => {
    if (res.destroyed) return;
    res.cork();
    for (let k = 0; k < 256 && at < body.length; k++, at += 64) res.write(body.subarray(at, at + 64));
    res.uncork();
    if (at >= body.length) res.end();
    else setImmediate(batch);
  };
  batch();
}

function onGetStream(req: IncomingMessage, res: ServerResponse): void {
  streams++;
  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
  res.on('close', () => streams--);
}

const server = createServer({ keepAliveTimeout: 120_000, noDelay: true }, (req, res) => {
  const path = req.url ?? '/';
  if (path === '/mcp' && req.method === 'POST') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      onPost(
        req,
        res,
        chunks.length === 1 ? (chunks[0] as Buffer).toString() : Buffer.concat(chunks).toString(),
      ),
    );
  } else if (path === '/mcp' && req.method === 'GET') {
    onGetStream(req, res);
  } else if (path === '/mcp' && req.method === 'DELETE') {
    res.writeHead(200).end();
  } else if (path === '/stats') {
    res.writeHead(200, JSON_HEADERS).end(JSON.stringify({ streams, requests }));
  } else {
    res.writeHead(404).end();
  }
});
server.headersTimeout = 60_000;
server.requestTimeout = 0;

server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`,
  );
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});

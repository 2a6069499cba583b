/**
 * A real MCP server built with @modelcontextprotocol/server 2.x (the stateless 2026-07-28
 * revision), served on a loopback port through `createMcpHandler` (web-standard Request/Response)
 * adapted to node:http here, since `@modelcontextprotocol/node` is not installed. It keeps the
 * handler's default legacy posture (`'stateless'`), so 2025-era clients are served too.
 *
 * It records every request as it arrived on the wire (method, headers, body) so tests can assert
 * what the upstream saw: the `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` headers, or that a
 * request never reached it.
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { createMcpHandler, fromJsonSchema, McpServer } from '@modelcontextprotocol/server';
import type { McpHttpHandler } from '@modelcontextprotocol/server';

export interface V2Received {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** HTTP status the handler answered with (set once the response head is written). */
  status: number | undefined;
}

export interface V2UpstreamOptions {
  /** `'reject'` serves only the 2026-07-28 revision; the default also serves 2025-era clients. */
  readonly legacy?: 'stateless' | 'reject';
}

export interface V2Upstream {
  readonly url: string;
  readonly port: number;
  readonly received: V2Received[];
  /** JSON-RPC methods of all POST bodies received, in order. */
  rpcMethods(): string[];
  close(): Promise<void>;
}

export const V2_SERVER_INFO = { name: 'test-upstream-v2', version: '2.0.0' } as const;
export const V2_RESOURCE_URI = 'file:///public/readme.md';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] });
/**
 * echo's argument is declared for header mirroring (2026-07-28 `x-mcp-header`): a 2.x client then
 * also sends it as `Mcp-Param-Message`, base64-wrapped when it is not plain ASCII. The keyword is
 * not in the JSON Schema type, hence the separate constant.
 */
const MIRRORED_MESSAGE = { type: 'string', 'x-mcp-header': 'Message' } as const;

function buildServer(): McpServer {
  const server = new McpServer(V2_SERVER_INFO, { capabilities: { tools: {}, prompts: {}, resources: {} } });
  server.registerTool(
    'echo',
    {
      description: 'Echoes its input',
      inputSchema: fromJsonSchema<{ message?: string }>({
        type: 'object',
        properties: { message: MIRRORED_MESSAGE },
      }),
    },
    ({ message }) => text(`Echo: ${message ?? ''}`),
  );
  server.registerTool(
    'add',
    {
      description: 'Adds two numbers',
      inputSchema: fromJsonSchema<{ a: number; b: number }>({
        type: 'object',
        properties: { a: { type: 'number' }, b: { type: 'number' } },
        required: ['a', 'b'],
      }),
    },
    ({ a, b }) => text(String(a + b)),
  );
  server.registerTool(
    'progress',
    {
      description: 'Sends progress notifications before its result',
      inputSchema: fromJsonSchema<{ steps?: number; delayMs?: number }>({
        type: 'object',
        properties: { steps: { type: 'number' }, delayMs: { type: 'number' } },
      }),
    },
    async ({ steps = 3, delayMs = 50 }, ctx) => {
      const token = ctx.mcpReq._meta?.progressToken;
      for (let i = 1; i <= steps; i++) {
        if (token !== undefined) {
          await ctx.mcpReq.notify({
            method: 'notifications/progress',
            params: { progressToken: token, progress: i, total: steps },
          });
        }
        await sleep(delayMs);
      }
      return text(`done after ${steps} steps`);
    },
  );
  server.registerPrompt('greeting', { description: 'Says hello' }, () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'hello from the v2 upstream' } }],
  }));
  server.registerResource('readme', V2_RESOURCE_URI, { mimeType: 'text/markdown' }, (uri) => ({
    contents: [{ uri: uri.href, mimeType: 'text/markdown', text: `contents of ${uri.href}` }],
  }));
  server.registerPrompt('grüße', { description: 'A name that is not plain ASCII' }, () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'hallo' } }],
  }));
  return server;
}

function toWebRequest(req: IncomingMessage, body: Buffer, signal: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.set(name, value);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  return new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`, {
    method,
    headers,
    body: hasBody ? new Uint8Array(body) : undefined,
    signal,
  });
}

/** Writes a web Response to node's ServerResponse, streaming the body with backpressure. */
async function writeWebResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, response.statusText, headers);
  res.flushHeaders();
  if (!response.body) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const stop = () => void reader.cancel().catch(() => {});
  res.once('close', stop);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await once(res, 'drain');
    }
    res.end();
  } catch {
    res.destroy();
  } finally {
    res.off('close', stop);
  }
}

export async function startV2Upstream(options: V2UpstreamOptions = {}): Promise<V2Upstream> {
  const received: V2Received[] = [];
  const handler: McpHttpHandler = createMcpHandler(() => buildServer(), {
    legacy: options.legacy ?? 'stateless',
    keepAliveMs: 0,
  });
  const http: HttpServer = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const record: V2Received = {
      method: req.method ?? '',
      headers: req.headers,
      body: body.toString('utf8'),
      status: undefined,
    };
    received.push(record);
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    try {
      const response = await handler.fetch(toWebRequest(req, body, controller.signal));
      record.status = response.status;
      await writeWebResponse(response, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500).end(String(err));
      else res.destroy();
    }
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    received,
    rpcMethods: () =>
      received
        .filter((r) => r.method === 'POST' && r.body)
        .flatMap((r) => {
          let v: unknown;
          try {
            v = JSON.parse(r.body);
          } catch {
            return [];
          }
          return ((Array.isArray(v) ? v : [v]) as { method?: unknown }[]).flatMap((m) =>
            typeof m?.method === 'string' ? [m.method] : [],
          );
        }),
    async close() {
      await handler.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

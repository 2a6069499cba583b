/**
 * An MCP server built the way the MCP TypeScript SDK documents for Express: `createMcpExpressApp()`
 * (which mounts `express.json()`, a body parser that honours the request's `charset` and
 * `Content-Encoding`) and a stateless Streamable HTTP transport given the parsed body. It records
 * the tools it ran, so a test can tell which message the upstream actually read.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

export interface ExpressUpstream {
  readonly url: string;
  /** Names of the tools this server ran, in order. */
  readonly ran: string[];
  close(): Promise<void>;
}

const TOOLS = [
  { name: 'echo', description: 'Echoes its input', inputSchema: { type: 'object' as const } },
  {
    name: 'secret_admin',
    description: 'Must never run for most keys',
    inputSchema: { type: 'object' as const },
  },
];

export async function startExpressUpstream(): Promise<ExpressUpstream> {
  const ran: string[] = [];
  const app = createMcpExpressApp();
  app.post('/mcp', async (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => {
    const server = new Server(
      { name: 'express-upstream', version: '1.0.0' },
      { capabilities: { tools: {} } },
    );
    server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
    server.setRequestHandler(CallToolRequestSchema, async (request) => {
      ran.push(request.params.name);
      const args = (request.params.arguments ?? {}) as Record<string, unknown>;
      return { content: [{ type: 'text', text: `${request.params.name}: ${String(args.message ?? '')}` }] };
    });
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const http: HttpServer = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    ran,
    async close() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/**
 * A small MCP server for the demo: three tools (one harmless, one that streams progress, one
 * dangerous), a prompt and a resource, over Streamable HTTP with sessions.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

function build(): McpServer {
  const server = new McpServer({ name: 'mcpgate-demo-upstream', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Echoes a message', inputSchema: { message: z.string() } },
    async ({ message }) => ({
      content: [{ type: 'text', text: message }],
    }),
  );
  server.registerTool(
    'count',
    {
      description: 'Counts to n, one progress notification a step',
      inputSchema: { n: z.number().int().min(1).max(20) },
    },
    async ({ n }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= n; i++) {
        if (token !== undefined)
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: i, total: n },
          });
        await new Promise((r) => setTimeout(r, 200));
      }
      return { content: [{ type: 'text', text: `counted to ${n}` }] };
    },
  );
  server.registerTool(
    'delete_everything',
    { description: 'A tool no key should be allowed to call' },
    async () => ({
      content: [{ type: 'text', text: 'you should never see this through mcpgate' }],
    }),
  );
  server.registerPrompt('greeting', { description: 'Says hello' }, () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'Hello from the demo server' } }],
  }));
  server.registerResource('readme', 'demo://readme', { description: 'The demo readme' }, async (uri) => ({
    contents: [{ uri: uri.href, text: 'This server sits behind mcpgate.' }],
  }));
  return server;
}

export async function startDemoServer(port = 0): Promise<{ url: string; close(): Promise<void> }> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const http = createServer(async (req, res) => {
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (!transport) {
      if (typeof sid === 'string') {
        res.writeHead(404).end();
        return;
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (id) => void sessions.set(id, created),
      });
      created.onclose = () => void (created.sessionId && sessions.delete(created.sessionId));
      await build().connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve));
  const { port: bound } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}/mcp`,
    async close() {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

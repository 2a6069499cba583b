/**
 * A roots-aware MCP server built with @modelcontextprotocol/sdk, as
 * `@modelcontextprotocol/server-filesystem` is: after `initialized` (once the client's stream is
 * open) and on `notifications/roots/list_changed` it asks the client for its roots and, when some
 * name an existing directory, serves those in place of its configured one; otherwise it keeps its
 * own. Its one tool, `read_file`, reads a file only inside the directories it currently serves.
 * Served over Streamable HTTP (stateful) or the older HTTP+SSE transport (`GET /sse`,
 * `POST /messages`). It records every roots answer it received, parsed by the SDK.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  RootsListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { Root } from '@modelcontextprotocol/sdk/types.js';

export interface RootsUpstream {
  readonly url: string;
  /** Every roots list the server received (what the SDK parsed from the client's answer). */
  readonly lent: Root[][];
  /** The raw bodies of the POSTs it received. */
  readonly bodies: string[];
  close(): Promise<void>;
}

/** Directories named by `roots` that exist (server-filesystem drops the others). */
async function validDirectories(roots: readonly Root[]): Promise<string[]> {
  const out: string[] = [];
  for (const root of roots) {
    try {
      const dir = fileURLToPath(root.uri);
      if ((await stat(dir)).isDirectory()) out.push(resolve(dir));
    } catch {
      // not a file URI, or no such directory
    }
  }
  return out;
}

function buildServer(configured: string, lent: Root[][], streamOpen: Promise<void>): Server {
  const server = new Server({ name: 'roots-upstream', version: '1.0.0' }, { capabilities: { tools: {} } });
  let served = [configured];
  const refresh = async () => {
    const { roots } = await server.listRoots();
    lent.push(roots);
    const dirs = await validDirectories(roots);
    served = dirs.length > 0 ? dirs : [configured];
  };
  server.oninitialized = () => {
    void streamOpen.then(refresh).catch(() => {});
  };
  server.setNotificationHandler(RootsListChangedNotificationSchema, async () => {
    await refresh().catch(() => {});
  });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [
      {
        name: 'read_file',
        description: 'Reads a file inside the allowed directories',
        inputSchema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
      },
    ],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const path = resolve(String(request.params.arguments?.path ?? ''));
    const inside = served.some((dir) => {
      const rel = relative(dir, path);
      return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
    });
    if (!inside) {
      return {
        isError: true,
        content: [{ type: 'text', text: `Access denied - path outside allowed directories: ${path}` }],
      };
    }
    return { content: [{ type: 'text', text: await readFile(path, 'utf8') }] };
  });
  return server;
}

export async function startRootsUpstream(
  configured: string,
  transport: 'streamable-http' | 'sse' = 'streamable-http',
): Promise<RootsUpstream> {
  const lent: Root[][] = [];
  const bodies: string[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  /** Per Streamable HTTP session: resolved once its GET stream is open. */
  const opened = new Map<string, () => void>();
  const sse = new Map<string, SSEServerTransport>();
  const http: HttpServer = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'POST') bodies.push(body);
    const parsed = body ? (JSON.parse(body) as unknown) : undefined;
    try {
      if (transport === 'sse') return await serveSse(req, res, parsed);
      const sid = req.headers['mcp-session-id'];
      let session = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (!session) {
        if (typeof sid === 'string') {
          res.writeHead(404).end();
          return;
        }
        let open!: () => void;
        const streamOpen = new Promise<void>((r) => (open = r));
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => {
            sessions.set(id, created);
            opened.set(id, open);
          },
        });
        await buildServer(configured, lent, streamOpen).connect(created);
        session = created;
      }
      // The server's own requests go on the session's GET stream: asked once it is open.
      if (req.method === 'GET' && typeof sid === 'string') setTimeout(() => opened.get(sid)?.(), 50);
      await session.handleRequest(req, res, parsed);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    }
  });

  async function serveSse(req: IncomingMessage, res: ServerResponse, parsed: unknown) {
    const method = req.method;
    const u = new URL(req.url ?? '', 'http://upstream');
    if (method === 'GET' && u.pathname === '/sse') {
      const t = new SSEServerTransport('/messages', res);
      sse.set(t.sessionId, t);
      res.on('close', () => sse.delete(t.sessionId));
      await buildServer(configured, lent, Promise.resolve()).connect(t);
      return;
    }
    const t = sse.get(u.searchParams.get('sessionId') ?? '');
    if (method !== 'POST' || u.pathname !== '/messages' || t === undefined) {
      res.writeHead(404).end();
      return;
    }
    await t.handlePostMessage(req, res, parsed);
  }

  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const { port } = http.address() as AddressInfo;
  return {
    url: transport === 'sse' ? `http://127.0.0.1:${port}/sse` : `http://127.0.0.1:${port}/mcp`,
    lent,
    bodies,
    async close() {
      for (const t of sessions.values()) await t.close().catch(() => {});
      for (const t of sse.values()) await t.close().catch(() => {});
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

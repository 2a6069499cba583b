/**
 * A real MCP server built with @modelcontextprotocol/sdk, served over Streamable HTTP on a loopback
 * port, that records what it received (so tests can assert what the upstream saw, e.g. that a
 * client's key never arrived or a denied call never reached it).
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  CreateMessageResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ErrorCode,
  ReadResourceRequestSchema,
  InitializeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { InitializeRequest, InitializeResult } from '@modelcontextprotocol/sdk/types.js';

export interface Received {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** Set when the request's connection closed before the response finished. */
  closedEarly: boolean;
}

export interface UpstreamOptions {
  /** Answer POSTs with application/json instead of SSE. */
  readonly jsonResponse?: boolean;
  /** Stateless: no sessions. */
  readonly stateless?: boolean;
  /** Number of extra generated tools `tool_0000`... (served in pages of `pageSize`). */
  readonly extraTools?: number;
  readonly pageSize?: number;
  /**
   * SSE events carry `id:` lines (an in-memory event store), and a request from a 2025-11-25
   * client first gets the SDK's priming event (`id:`, `retry:`, empty `data:`).
   */
  readonly eventIds?: boolean;
  /** A real event store: a GET with `Last-Event-ID` replays the events of a cut stream. */
  readonly replay?: boolean;
  /**
   * With `replay`: an initialize's POST stream ends after the SDK's priming event, before its
   * answer (the server's closeSSEStream, as a proxy's idle timeout would), so the client resumes it
   * with a GET of the new session and `Last-Event-ID` (SEP-1699).
   */
  readonly cutInitialize?: boolean;
  /**
   * Adds a tool `announce`: it appends the tools named in `arguments.add` (strings) to this
   * server's list and sends `notifications/tools/list_changed`, on the call's own stream when
   * `arguments.related` is true, else on the standalone GET stream.
   */
  readonly announce?: boolean;
  /**
   * The tools to list instead of the built-in ones, read on every tools/list (a test changes their
   * definitions between calls by mutating this array). A call to one answers with its name.
   */
  readonly tools?: Record<string, unknown>[];
  /** Likewise for prompts/list (prompts/get answers any name). */
  readonly prompts?: Record<string, unknown>[];
}

export interface SdkUpstream {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  /** `arguments.label` of each `slow` call that a notifications/cancelled aborted. */
  readonly cancelled: string[];
  /** JSON-RPC methods of all POST bodies received. */
  rpcMethods(): string[];
  /** tools/call names received. */
  toolCalls(): string[];
  close(): Promise<void>;
}

const BASE_TOOLS = [
  {
    name: 'echo',
    description: 'Echoes its input',
    inputSchema: { type: 'object', properties: { message: { type: 'string' } } },
  },
  {
    name: 'progress',
    description: 'Sends progress notifications before its result',
    inputSchema: { type: 'object', properties: { steps: { type: 'number' }, delayMs: { type: 'number' } } },
  },
  {
    name: 'slow',
    description: 'Answers after a delay',
    inputSchema: { type: 'object', properties: { ms: { type: 'number' } } },
  },
  {
    name: 'ask_sampling',
    description: 'Asks the client to sample, on the standalone GET stream',
    inputSchema: { type: 'object' },
  },
  { name: 'secret_admin', description: 'A tool most keys must never see', inputSchema: { type: 'object' } },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ANNOUNCE_TOOL = {
  name: 'announce',
  description: 'Adds tools and sends notifications/tools/list_changed',
  inputSchema: { type: 'object', properties: { add: { type: 'array' }, related: { type: 'boolean' } } },
};

/** Just enough of an event store for events to carry ids (no replay). */
function idOnlyEventStore(): EventStore {
  let next = 0;
  return {
    storeEvent: async (streamId) => `${streamId}_${++next}`,
    replayEventsAfter: async (lastEventId) => lastEventId.slice(0, lastEventId.lastIndexOf('_')),
  };
}

/**
 * A real event store that replays in the order events were stored. (The SDK's example store sorts
 * ids that embed the time and a random suffix, so two events of one millisecond can replay out of
 * order.)
 */
function replayEventStore(): EventStore {
  let next = 0;
  const events: { id: string; streamId: string; message: Parameters<EventStore['storeEvent']>[1] }[] = [];
  return {
    storeEvent: async (streamId, message) => {
      const id = `${streamId}_${String(++next).padStart(10, '0')}`;
      events.push({ id, streamId, message });
      return id;
    },
    getStreamIdForEventId: async (eventId) => events.find((e) => e.id === eventId)?.streamId,
    replayEventsAfter: async (lastEventId, { send }) => {
      const at = events.findIndex((e) => e.id === lastEventId);
      if (at === -1) return '';
      const streamId = events[at]!.streamId;
      for (const e of events.slice(at + 1)) if (e.streamId === streamId) await send(e.id, e.message);
      return streamId;
    },
  };
}

function buildServer(options: UpstreamOptions, cancelled: string[] = []): Server {
  const server = new Server(
    { name: 'test-upstream', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true }, prompts: {}, resources: {}, logging: {} } },
  );
  if (options.cutInitialize) {
    // The SDK's own initialize handling (a private method), after the stream is cut.
    const own = server as unknown as { _oninitialize(request: InitializeRequest): Promise<InitializeResult> };
    server.setRequestHandler(InitializeRequestSchema, async (request, ctx) => {
      ctx.closeSSEStream?.();
      await sleep(20);
      return own._oninitialize(request);
    });
  }
  const extra = Array.from({ length: options.extraTools ?? 0 }, (_, i) => ({
    name: `tool_${String(i).padStart(4, '0')}`,
    description: `generated tool ${i}`,
    inputSchema: { type: 'object' as const },
  }));
  const all: {
    name: string;
    description: string;
    inputSchema: Record<string, unknown> & { type: 'object' };
  }[] = (options.tools ??
    ([...BASE_TOOLS, ...(options.announce ? [ANNOUNCE_TOOL] : []), ...extra] as unknown[])) as typeof all;
  server.setRequestHandler(ListToolsRequestSchema, async (request, ctx) => {
    // Per request: `announce` may have added tools.
    const pageSize = options.pageSize ?? all.length;
    const start = request.params?.cursor ? Number(request.params.cursor) : 0;
    if (!options.jsonResponse && request.params?._meta?.progressToken !== undefined) {
      await ctx.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: request.params._meta.progressToken, progress: 1, total: 2 },
      });
    }
    const page = all.slice(start, start + pageSize);
    const next = start + pageSize < all.length ? String(start + pageSize) : undefined;
    return next === undefined ? { tools: page } : { tools: page, nextCursor: next };
  });
  server.setRequestHandler(CallToolRequestSchema, async (request, ctx) => {
    const args = (request.params.arguments ?? {}) as Record<string, unknown>;
    if (options.announce && request.params.name === 'announce') {
      const add = Array.isArray(args.add) ? args.add.filter((n): n is string => typeof n === 'string') : [];
      for (const name of add)
        all.push({ name, description: `announced ${name}`, inputSchema: { type: 'object' } });
      if (args.related === true) await ctx.sendNotification({ method: 'notifications/tools/list_changed' });
      else await server.sendToolListChanged();
      return { content: [{ type: 'text', text: `announced ${add.length}` }] };
    }
    switch (request.params.name) {
      case 'echo':
        return { content: [{ type: 'text', text: `Echo: ${String(args.message ?? '')}` }] };
      case 'progress': {
        const steps = Number(args.steps ?? 3);
        const delay = Number(args.delayMs ?? 100);
        const token = request.params._meta?.progressToken;
        for (let i = 1; i <= steps; i++) {
          if (token !== undefined) {
            await ctx.sendNotification({
              method: 'notifications/progress',
              params: { progressToken: token, progress: i, total: steps },
            });
          }
          await sleep(delay);
        }
        return { content: [{ type: 'text', text: `done after ${steps} steps` }] };
      }
      case 'slow': {
        // A notifications/cancelled naming this request's id (as the upstream received it) aborts it.
        const ms = Number(args.ms ?? 1000);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve();
          });
        });
        if (ctx.signal.aborted) cancelled.push(String(args.label ?? ''));
        return { content: [{ type: 'text', text: 'slow done' }] };
      }
      case 'ask_sampling': {
        // Not related to the request: the SDK sends it on the standalone GET stream.
        const result = await server.request(
          {
            method: 'sampling/createMessage',
            params: {
              messages: [{ role: 'user', content: { type: 'text', text: 'hello?' } }],
              maxTokens: 10,
            },
          },
          CreateMessageResultSchema,
        );
        const content = result.content as { type: string; text?: string };
        return { content: [{ type: 'text', text: `sampled: ${content.text ?? ''}` }] };
      }
      case 'secret_admin':
        return { content: [{ type: 'text', text: 'admin secrets' }] };
      default:
        if (all.some((t) => t.name === request.params.name))
          return { content: [{ type: 'text', text: request.params.name }] };
        throw new McpError(ErrorCode.InvalidParams, `Tool ${request.params.name} not found`);
    }
  });
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({
    prompts: (options.prompts ?? [{ name: 'greeting' }, { name: 'internal_prompt' }]) as { name: string }[],
  }));
  server.setRequestHandler(GetPromptRequestSchema, async (request) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `prompt ${request.params.name}` } }],
  }));
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({
    resources: [
      { uri: 'file:///public/readme.md', name: 'readme' },
      { uri: 'file:///private/keys.txt', name: 'keys' },
    ],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (request) => ({
    contents: [{ uri: request.params.uri, text: `contents of ${request.params.uri}` }],
  }));
  return server;
}

export async function startSdkUpstream(options: UpstreamOptions = {}): Promise<SdkUpstream> {
  const received: Received[] = [];
  const cancelled: string[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const http: HttpServer = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const record: Received = { method: req.method ?? '', headers: req.headers, body, closedEarly: false };
    received.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.closedEarly = true;
    });
    const parsed = body ? (JSON.parse(body) as unknown) : undefined;
    try {
      if (options.stateless) {
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: undefined,
          enableJsonResponse: options.jsonResponse ?? false,
          ...(options.eventIds ? { eventStore: idOnlyEventStore(), retryInterval: 1000 } : {}),
          ...(options.replay ? { eventStore: replayEventStore() } : {}),
        });
        const server = buildServer(options, cancelled);
        await server.connect(transport);
        res.on('close', () => void transport.close());
        await transport.handleRequest(req, res, parsed);
        return;
      }
      const sid = req.headers['mcp-session-id'];
      let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (!transport) {
        if (typeof sid === 'string') {
          res.writeHead(404, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              jsonrpc: '2.0',
              id: null,
              error: { code: -32001, message: 'Session not found' },
            }),
          );
          return;
        }
        const created = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: options.jsonResponse ?? false,
          ...(options.eventIds ? { eventStore: idOnlyEventStore(), retryInterval: 1000 } : {}),
          ...(options.replay ? { eventStore: replayEventStore() } : {}),
          onsessioninitialized: (id) => void sessions.set(id, created),
        });
        created.onclose = () => {
          if (created.sessionId) sessions.delete(created.sessionId);
        };
        await buildServer(options, cancelled).connect(created);
        transport = created;
      }
      await transport.handleRequest(req, res, parsed);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    }
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  const bodies = () =>
    received
      .filter((r) => r.method === 'POST' && r.body)
      .flatMap((r) => {
        const v = JSON.parse(r.body) as unknown;
        return (Array.isArray(v) ? v : [v]) as { method?: string; params?: { name?: string } }[];
      });
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    port,
    received,
    cancelled,
    rpcMethods: () => bodies().flatMap((m) => (m.method ? [m.method] : [])),
    toolCalls: () =>
      bodies().flatMap((m) => (m.method === 'tools/call' && m.params?.name ? [m.params.name] : [])),
    async close() {
      for (const t of sessions.values()) await t.close().catch(() => {});
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** How many JSON-RPC messages the upstream received whose JSON contains `marker`. */
export function receivedWith(upstream: SdkUpstream, marker: string): number {
  let n = 0;
  for (const r of upstream.received) {
    if (r.method !== 'POST' || !r.body) continue;
    const parsed = JSON.parse(r.body) as unknown;
    for (const m of Array.isArray(parsed) ? parsed : [parsed]) if (JSON.stringify(m).includes(marker)) n++;
  }
  return n;
}

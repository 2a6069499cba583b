/**
 * A raw 2025-11-25 Streamable HTTP client of one key for the task-ownership reviews (tasklost,
 * tasksatk): numbered POSTs with the key's bearer, a session opened by `initialize`, reloads of
 * the gateway's config, and the JSON answer their scripted upstreams write.
 */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import type { TestGateway } from './gateway.ts';

export interface Answered {
  readonly status: number;
  readonly text: string;
  readonly session: string | null;
}

export function taskClient(key: string) {
  let nextId = 1;
  const headers = (session?: string) => ({
    authorization: `Bearer ${key}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25',
    ...(session === undefined ? {} : { 'mcp-session-id': session }),
  });

  async function call(
    gateway: TestGateway,
    method: string,
    params: Record<string, unknown> | undefined,
    session: string | undefined,
    signal?: AbortSignal,
  ): Promise<Answered> {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: headers(session),
      body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, ...(params ? { params } : {}) }),
      ...(signal ? { signal } : {}),
    });
    return { status: res.status, text: await res.text(), session: res.headers.get('mcp-session-id') };
  }

  /** Opens a session; its id. */
  async function open(gateway: TestGateway): Promise<string> {
    const init = await call(
      gateway,
      'initialize',
      { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } },
      undefined,
    );
    assert.equal(init.status, 200, init.text);
    assert.ok(init.session !== null);
    return init.session;
  }

  return { headers, call, open };
}

/** Reloads the gateway with `text`, which must apply. */
export async function reloadTo(gateway: TestGateway, text: string): Promise<void> {
  const { config: next, issues } = parseConfigText(text, {}, Date.now());
  assert.ok(next, JSON.stringify(issues));
  const outcome = await gateway.runtime.reload(next);
  assert.equal(outcome.applied, true);
}

/** A JSON answer (a string is sent as it is). */
export function jsonAnswer(res: ServerResponse, body: unknown, status = 200): void {
  const bytes = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
}

/** Tasks an upstream that numbers them per session made (`task-1` in each): which, and by which tool. */
export class SessionTasks {
  readonly made: { session: string; taskId: string; tool: string }[] = [];
  private readonly counters = new Map<string, number>();

  /** The next task of `session`, made by `tool`: its id. */
  make(session: string, tool: string): string {
    const n = (this.counters.get(session) ?? 0) + 1;
    this.counters.set(session, n);
    const taskId = `task-${n}`;
    this.made.push({ session, taskId, tool });
    return taskId;
  }

  find(session: string, taskId: unknown): { tool: string } | undefined {
    return this.made.find((t) => t.session === session && t.taskId === taskId);
  }

  clear(): void {
    this.made.length = 0;
    this.counters.clear();
  }
}

/** The upstream's answer to `initialize` (2025-11-25, tasks declared), opening upstream session `session`. */
export function answerInitialize(res: ServerResponse, id: unknown, session: string): void {
  const bytes = Buffer.from(
    JSON.stringify({
      jsonrpc: '2.0',
      id,
      result: {
        protocolVersion: '2025-11-25',
        capabilities: { tasks: {} },
        serverInfo: { name: 'u', version: '1' },
      },
    }),
  );
  res.writeHead(200, {
    'content-type': 'application/json',
    'mcp-session-id': session,
    'content-length': bytes.length,
  });
  res.end(bytes);
}

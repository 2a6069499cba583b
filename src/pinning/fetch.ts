/**
 * Reads the upstream's tool and prompt definitions as the gateway reaches it: `upstream.url` with
 * `upstream.headers`, over Streamable HTTP (JSON-RPC over undici; the MCP SDK is not bundled into
 * the executable). initialize, notifications/initialized, every page of tools/list and (when the
 * server has prompts) prompts/list, then the session is closed.
 *
 * A list the gateway could not judge is not pinned either: a response that repeats a key anywhere
 * is refused, as is an entry that is not an object with a string name or a name listed twice.
 */
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { definitionOf, holdsLossyNumber, repeatsKey } from './canonical.ts';
import type { Definition } from './canonical.ts';
import type { PinKind } from './lockfile.ts';
import { SseParser } from '../proxy/sse.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';

/** The protocol version offered; the server answers with the one it speaks. */
export const OFFERED_VERSION = '2025-11-25';
/** More pages than this is a server that never ends its list. */
const MAX_PAGES = 1000;
/** Largest response read. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export interface UpstreamTarget {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

export class PinFetchError extends Error {
  override readonly name = 'PinFetchError';
}

export async function fetchDefinitions(
  target: UpstreamTarget,
  clientName: string,
  clientVersion: string,
): Promise<Record<PinKind, Definition[]>> {
  const headers: Record<string, string> = {
    ...target.headers,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  let nextId = 1;
  async function call(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = nextId++;
    const res = await send({ jsonrpc: '2.0', id, method, params });
    const text = await readAnswer(res, id);
    if (repeatsKey(text)) throw new PinFetchError(`${method}: the response repeats a key; not pinned`);
    if (holdsLossyNumber(text))
      throw new PinFetchError(
        `${method}: the response holds a number a double does not hold exactly; not pinned`,
      );
    // A key V8's JSON.parse misread here (jsonrpc/key-check.ts) would pin a definition no client
    // reads; serving never matches it (canonical.ts readEntry reads entries as spelled): fail closed.
    const message = JSON.parse(text) as { result?: unknown; error?: { code?: unknown; message?: unknown } };
    if (message.error !== undefined)
      throw new PinFetchError(
        `${method}: upstream error ${String(message.error.code)} ${String(message.error.message)}`,
      );
    if (!isPlainObject(message.result))
      throw new PinFetchError(`${method}: the response has no result object`);
    return message.result;
  }
  async function send(body: unknown): Promise<Dispatcher.ResponseData> {
    try {
      return await request(target.url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        headersTimeout: target.timeoutMs,
        bodyTimeout: target.timeoutMs,
      });
    } catch (err) {
      throw new PinFetchError(`cannot reach the upstream: ${(err as Error).message}`);
    }
  }

  const init = await call('initialize', {
    protocolVersion: OFFERED_VERSION,
    capabilities: {},
    clientInfo: { name: clientName, version: clientVersion },
  });
  const version = init.protocolVersion;
  if (typeof version === 'string') headers['mcp-protocol-version'] = version;
  const capabilities = isPlainObject(init.capabilities) ? init.capabilities : {};
  try {
    const initialized = await send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    await initialized.body.dump();
    const tools = isPlainObject(capabilities.tools) ? await listAll('tools', call) : [];
    const prompts = isPlainObject(capabilities.prompts) ? await listAll('prompts', call) : [];
    return { tools, prompts };
  } finally {
    if (headers['mcp-session-id'] !== undefined) {
      await request(target.url, { method: 'DELETE', headers, headersTimeout: target.timeoutMs })
        .then((res) => res.body.dump())
        .catch(() => {});
    }
  }

  /** The JSON text of the response to `id`, from a JSON body or an SSE stream. */
  async function readAnswer(res: Dispatcher.ResponseData, id: number): Promise<string> {
    const session = res.headers['mcp-session-id'];
    if (typeof session === 'string' && headers['mcp-session-id'] === undefined)
      headers['mcp-session-id'] = session;
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await res.body.dump();
      throw new PinFetchError(`upstream answered HTTP ${res.statusCode}`);
    }
    const type = String(res.headers['content-type'] ?? '').toLowerCase();
    if (type.startsWith('application/json')) return bounded(await res.body.text());
    if (!type.startsWith('text/event-stream')) {
      await res.body.dump();
      throw new PinFetchError(`upstream answered with content type ${JSON.stringify(type)}`);
    }
    const parser = new SseParser();
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_RESPONSE_BYTES) throw new PinFetchError('upstream response too large');
      for (const event of parser.push(chunk as Buffer)) {
        const data = event.data;
        if (data === undefined || data === '') continue;
        let message: unknown;
        try {
          message = JSON.parse(data);
        } catch {
          continue;
        }
        if (isPlainObject(message) && message.id === id && !Object.hasOwn(message, 'method')) {
          res.body.destroy();
          return data;
        }
      }
    }
    throw new PinFetchError('upstream closed the stream without an answer');
  }
}

async function listAll(
  kind: PinKind,
  call: (method: string, params: Record<string, unknown>) => Promise<Record<string, unknown>>,
): Promise<Definition[]> {
  const out: Definition[] = [];
  const names = new Set<string>();
  const cursors = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const result = await call(`${kind}/list`, cursor === undefined ? {} : { cursor });
    const list = result[kind];
    if (!Array.isArray(list)) throw new PinFetchError(`${kind}/list: result.${kind} is not an array`);
    for (const entry of list) {
      if (!isPlainObject(entry) || typeof entry.name !== 'string')
        throw new PinFetchError(`${kind}/list: an entry is not an object with a string name`);
      if (names.has(entry.name))
        throw new PinFetchError(`${kind}/list: ${JSON.stringify(entry.name)} is listed twice`);
      names.add(entry.name);
      out.push(definitionOf(entry));
    }
    const next = result.nextCursor;
    if (typeof next !== 'string' || next === '') return out;
    if (cursors.has(next)) throw new PinFetchError(`${kind}/list: the upstream repeats a cursor`);
    cursors.add(next);
    cursor = next;
  }
  throw new PinFetchError(`${kind}/list: more than ${MAX_PAGES} pages`);
}

function bounded(text: string): string {
  if (text.length > MAX_RESPONSE_BYTES) throw new PinFetchError('upstream response too large');
  return text;
}

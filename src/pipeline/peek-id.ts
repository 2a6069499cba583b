/**
 * Finds the JSON-RPC id of a small body without trusting it (for error responses to requests that
 * are refused before their body is inspected). Reads at most `limit` bytes, held in one buffer
 * counted in the process-wide budget; anything larger, unparsable, slow, in too many pieces or over
 * the budget yields null.
 */
import type { IncomingMessage } from 'node:http';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import { ownKeyHoldsBackslash, peekSpelledId } from '../jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../policy/methods.ts';
import { BodyBuffer } from '../proxy/body-buffer.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';

const PEEK_TIMEOUT_MS = 1000;
/**
 * Pieces ('data' events) a peek reads at most. A body of up to 16 KiB comes in a few TCP segments
 * (or chunks); in one-byte chunks it was 16,384 events, about 25 ms of the event loop for each
 * unauthenticated request (14 times a plain 401). A body in more pieces answers with a null id.
 */
const PEEK_PIECES = 64;

export interface Peeked {
  readonly id: JsonRpcId | null;
  /** A lone message's method, when it is one the gateway knows, and what it names (for the audit line). */
  readonly call?: PeekedCall | undefined;
  /** Body bytes read (for the audit line's bytes_in). */
  readonly bytes: number;
}

export function peekRequestId(req: IncomingMessage, limit: number, budget: BufferBudget): Promise<Peeked> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && !(Number(declared) <= limit)) return Promise.resolve({ id: null, bytes: 0 });
  return new Promise((resolve) => {
    const held = new BodyBuffer(budget, limit);
    let total = 0;
    let pieces = 0;
    let done = false;
    const finish = (id: JsonRpcId | null, call?: PeekedCall) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      held.release();
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      resolve({ id, bytes: total, call });
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (++pieces > PEEK_PIECES || held.push(chunk) !== undefined) finish(null);
    };
    const onEnd = () => {
      let id: JsonRpcId | null = null;
      let call: PeekedCall | undefined;
      try {
        const value: unknown = JSON.parse(held.bytes().toString('utf8'));
        id = peekSpelledId(value);
        call = peekedCall(value);
      } catch {
        // not JSON: answer with a null id
      }
      finish(id, call);
    };
    const timer = setTimeout(() => finish(null), PEEK_TIMEOUT_MS);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onEnd);
  });
}

export interface PeekedCall {
  readonly method: string;
  readonly tool?: string | undefined;
  readonly prompt?: string | undefined;
  readonly resource?: string | undefined;
}

/**
 * A lone message's method when it is spelled as a method the gateway knows, with the tool, prompt
 * or resource it names (a string), else undefined. Nothing here is judged: it only tells the audit
 * line of a refused request what the request said it was.
 */
function peekedCall(value: unknown): PeekedCall | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { method, params } = value as { method?: unknown; params?: unknown };
  if (typeof method !== 'string' || KNOWN_METHODS.get(method) !== method) return undefined;
  const p = typeof params === 'object' && params !== null ? (params as Record<string, unknown>) : {};
  // Beside a key holding a backslash, a member read may not be the one the bytes mean: JSON.parse,
  // primed by an earlier body, hides a repeat spelled with an escape (`"n\u0061me":"secret"` read as
  // `n\u0`), and the line would record a name the request did not call (parse.ts peekSpelledId).
  if (ownKeyHoldsBackslash(value) || ownKeyHoldsBackslash(p)) return undefined;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  if (method === 'tools/call') return { method, tool: text(p.name) };
  if (method === 'prompts/get') return { method, prompt: text(p.name) };
  if (method === 'resources/read') return { method, resource: text(p.uri) };
  return { method };
}

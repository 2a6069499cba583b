/**
 * Finds the JSON-RPC id of a small body without trusting it (for error responses to requests that
 * are refused before their body is inspected). Reads at most `limit` bytes, held in one buffer
 * counted in the process-wide budget; anything larger, unparsable, slow or over the budget yields
 * null.
 */
import type { IncomingMessage } from 'node:http';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import { peekId } from '../jsonrpc/parse.ts';
import { BodyBuffer } from '../proxy/body-buffer.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';

const PEEK_TIMEOUT_MS = 1000;

export interface Peeked {
  readonly id: JsonRpcId | null;
  /** Body bytes read (for the audit line's bytes_in). */
  readonly bytes: number;
}

export function peekRequestId(req: IncomingMessage, limit: number, budget: BufferBudget): Promise<Peeked> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && !(Number(declared) <= limit)) return Promise.resolve({ id: null, bytes: 0 });
  return new Promise((resolve) => {
    const held = new BodyBuffer(budget, limit);
    let total = 0;
    let done = false;
    const finish = (id: JsonRpcId | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      held.release();
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      resolve({ id, bytes: total });
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (held.push(chunk) !== undefined) finish(null);
    };
    const onEnd = () => {
      let id: JsonRpcId | null = null;
      try {
        id = peekId(JSON.parse(held.bytes().toString('utf8')));
      } catch {
        // not JSON: answer with a null id
      }
      finish(id);
    };
    const timer = setTimeout(() => finish(null), PEEK_TIMEOUT_MS);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onEnd);
  });
}

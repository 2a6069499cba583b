/**
 * Finds the JSON-RPC id of a small body without trusting it (for error responses to requests that
 * are refused before their body is inspected). Reads at most `limit` bytes; anything larger,
 * unparsable or slow yields null.
 */
import type { IncomingMessage } from 'node:http';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import { peekId } from '../jsonrpc/parse.ts';

const PEEK_TIMEOUT_MS = 1000;

export interface Peeked {
  readonly id: JsonRpcId | null;
  /** Body bytes read (for the audit line's bytes_in). */
  readonly bytes: number;
}

export function peekRequestId(req: IncomingMessage, limit: number): Promise<Peeked> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && !(Number(declared) <= limit)) return Promise.resolve({ id: null, bytes: 0 });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (id: JsonRpcId | null) => {
      const result = { id, bytes: total };
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) finish(null);
      else chunks.push(chunk);
    };
    const onEnd = () => {
      try {
        finish(peekId(JSON.parse(Buffer.concat(chunks, total).toString('utf8'))));
      } catch {
        finish(null);
      }
    };
    const timer = setTimeout(() => finish(null), PEEK_TIMEOUT_MS);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onEnd);
  });
}

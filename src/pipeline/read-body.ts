/**
 * Reads a request body up to a cap (policy must read it; nothing else is buffered). Past the cap
 * the client gets 413 at once and the connection is closed after the answer, so a huge upload is
 * never read. The body is copied into one buffer (sized from Content-Length when given) reserved
 * against the process-wide budget until the response has finished; when the budget is spent the
 * request gets 503 (ERR_OVERLOADED) and is not read further.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../jsonrpc/errors.ts';
import { BodyBuffer } from '../proxy/body-buffer.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';

export type ReadBody = (req: IncomingMessage, res: ServerResponse) => Promise<Buffer>;

export function createReadBody(maxBytes: number, budget: BufferBudget): ReadBody {
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0)
    throw new TypeError('maxBytes must be a positive integer');
  return function readBody(req, res) {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBytes) {
      return Promise.reject(tooLarge());
    }
    const held = new BodyBuffer(budget, maxBytes, declared === undefined ? undefined : Number(declared));
    // The bytes (and what is parsed from them) live until the response has finished.
    if (res.destroyed) held.release();
    else res.once('close', () => held.release());
    return new Promise<Buffer>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        const refusal = held.push(chunk);
        if (refusal !== undefined) {
          cleanup();
          req.pause();
          held.release();
          reject(refusal === 'too-large' ? tooLarge() : overloaded());
        }
      };
      const onEnd = () => {
        cleanup();
        resolve(held.bytes());
      };
      const onError = (err: Error) => {
        cleanup();
        held.release();
        reject(new GatewayError('ERR_CLIENT_ABORTED', { cause: err }));
      };
      const onClose = () => {
        if (!req.complete) onError(new Error('client closed the request'));
      };
      const cleanup = () => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onClose);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onClose);
    });
  };
}

function tooLarge(): GatewayError {
  return new GatewayError('ERR_BODY_TOO_LARGE', { headers: { connection: 'close' } });
}

function overloaded(): GatewayError {
  return new GatewayError('ERR_OVERLOADED', { headers: { connection: 'close', 'retry-after': '1' } });
}

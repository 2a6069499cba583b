/**
 * Reads a request body up to a cap (policy must read it; nothing else is buffered). Past the cap
 * the client gets 413 at once and the connection is closed after the answer, so a huge upload is
 * never read.
 */
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../jsonrpc/errors.ts';

export function createReadBody(maxBytes: number): (req: IncomingMessage) => Promise<Buffer> {
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0)
    throw new TypeError('maxBytes must be a positive integer');
  return function readBody(req) {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBytes) {
      return Promise.reject(tooLarge());
    }
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let total = 0;
      const onData = (chunk: Buffer) => {
        total += chunk.length;
        if (total > maxBytes) {
          cleanup();
          req.pause();
          reject(tooLarge());
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = () => {
        cleanup();
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
      };
      const onError = (err: Error) => {
        cleanup();
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

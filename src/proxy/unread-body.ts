/**
 * The body a client gets instead of an upstream body the gateway could not read (neither JSON nor
 * SSE where a rule must read it), when the status allows one of the gateway's own.
 */
import { RPC } from '../jsonrpc/errors.ts';
import { errorBody } from '../jsonrpc/message.ts';

const ACCEPTED = { body: Buffer.from('Accepted'), type: 'text/plain' };
const EMPTY = Buffer.alloc(0);
const NO_CONTENT = { body: EMPTY, type: undefined };

/**
 * What the client gets instead of a body the gateway could not read: for an error status, an error
 * that names no request (what an upstream's error without a readable body means); for 202 the
 * gateway's own `Accepted` (what an HTTP+SSE server says); for 204 nothing.
 */
export function unreadBody(status: number): { readonly body: Buffer; readonly type: string | undefined } {
  if (status === 202) return ACCEPTED;
  if (status < 300) return NO_CONTENT;
  return {
    body: Buffer.from(errorBody(null, RPC.UPSTREAM, `upstream answered ${status}`)),
    type: 'application/json',
  };
}

/**
 * For the parse's differential tests: a body at any alignment in memory (as a socket read may give
 * it), and what the fast path and JSON.parse say of it, as an outcome to compare.
 */
import { BODY_LIMITS, parseBody } from '../../src/jsonrpc/parse.ts';
import { isGatewayError } from '../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../src/policy/methods.ts';

/** The body's bytes at `offset` (0 to 3) past a 4-aligned address. */
export function at(text: string, offset: number): Buffer {
  const bytes = Buffer.from(text);
  const memory = Buffer.alloc(bytes.length + 4);
  bytes.copy(memory, offset);
  return memory.subarray(offset, offset + bytes.length);
}

/** 'ok' or the error code, for the fast path (skeletonFrom 0), arguments unread or read. */
export function fastOutcome(body: Buffer, argumentsRead: boolean): string {
  try {
    parseBody(body, KNOWN_METHODS, BODY_LIMITS, argumentsRead, 0);
    return 'ok';
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return err.code;
  }
}

/** 'ok' or ERR_PARSE, as JSON.parse reads the text. */
export function byJsonParse(text: string): string {
  try {
    JSON.parse(text);
    return 'ok';
  } catch {
    return 'ERR_PARSE';
  }
}

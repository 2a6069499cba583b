/**
 * The envelope of a POST body: the request headers that say how to read its bytes. The gateway
 * reads the body as UTF-8 JSON and writes its own `Content-Type: application/json` and
 * `Content-Length` toward the upstream, so a client's envelope is accepted only when it means
 * exactly that. Anything else gets 415 before the body is read or judged: an upstream that honours
 * a `charset` (UTF-7, UTF-16 ...) or a `Content-Encoding` could otherwise read a different message
 * than the one the gateway judged.
 *
 * - `Content-Type`: the media type `application/json` (any case). Its parameters must be
 *   well-formed (RFC 9110 §8.3.1); a `charset` parameter (any case, quoted or not, each one when
 *   repeated) must be `utf-8`. Other parameters are ignored: they never reach the upstream.
 * - `Content-Encoding`: absent or `identity`. A compressed body is refused, not decoded.
 * - `Transfer-Encoding`: absent or `chunked` alone. Node's parser takes any list that ends in
 *   `chunked` (`gzip, chunked`, or the two in separate lines) and hands over the bytes the other
 *   codings made, undecoded: the body is then not what the client meant, and RFC 9112 section 6.1
 *   says a server that does not apply a coding answers 501 (Not Implemented), never reads on.
 *
 * A GET or DELETE carries no body (checkNoBody): RFC 9110 gives content in either no meaning, and
 * MCP defines none. The gateway forwards neither one's body, so one that announces a body is refused
 * (400) before anything is judged, never answered as if the bytes were not there.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../jsonrpc/errors.ts';

const CHARSET_MESSAGE = 'unsupported media type: the body must be UTF-8 (charset=utf-8 or none)';
const ENCODING_MESSAGE = 'unsupported media type: send the body uncompressed (Content-Encoding: identity)';
const TRANSFER_MESSAGE =
  'not implemented: a transfer coding other than chunked (send the body with Content-Length or Transfer-Encoding: chunked)';
const FRAMING_MESSAGE = 'invalid request: malformed HTTP request body';
const BODY_MESSAGE = 'invalid request: a GET or DELETE carries no body';

/** One `; name=value` parameter (an empty one, `;;`, is allowed by the grammar). */
const PARAMETER =
  /[ \t]*;[ \t]*(?:([!#$%&'*+.^_`|~0-9A-Za-z-]+)=([!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?/y;

/**
 * Throws ERR_UNSUPPORTED_MEDIA_TYPE unless the body is plain UTF-8 application/json, and
 * ERR_INVALID_REQUEST for a transfer coding but `chunked` alone (501; 400 without `chunked` last).
 */
export function checkBodyEnvelope(headers: IncomingHttpHeaders): void {
  const transfer = headers['transfer-encoding'];
  // (No id is peeked from such a body either: its bytes are not what the client meant.)
  if (transfer !== undefined && !isChunked(transfer)) {
    // Without `chunked` last the body has no framing at all (RFC 9112 section 6.3: 400), as when
    // Node's parser fails in it.
    if (!/(?:^|,)[ \t]*chunked[ \t]*$/i.test(transfer))
      throw new GatewayError('ERR_INVALID_REQUEST', { message: FRAMING_MESSAGE, rpcId: null });
    throw new GatewayError('ERR_INVALID_REQUEST', { status: 501, message: TRANSFER_MESSAGE, rpcId: null });
  }
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && !isIdentity(encoding))
    throw new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { message: ENCODING_MESSAGE });
  const type = headers['content-type'];
  // The common case, as the SDK clients send it.
  if (type === 'application/json') return;
  if (type === undefined) throw new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE');
  const problem = contentTypeProblem(type);
  if (problem !== undefined) throw new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { message: problem });
}

/**
 * Throws ERR_INVALID_REQUEST when a GET or DELETE announces a body: a Transfer-Encoding, or a
 * Content-Length other than 0 (which some clients send on a DELETE).
 */
export function checkNoBody(headers: IncomingHttpHeaders): void {
  const length = headers['content-length'];
  if (headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0'))
    throw new GatewayError('ERR_INVALID_REQUEST', { message: BODY_MESSAGE });
}

/** `chunked` alone (any case, with whitespace around it): Node joins repeated lines with commas. */
function isChunked(value: string): boolean {
  return value.trim().toLowerCase() === 'chunked';
}

function isIdentity(value: string): boolean {
  for (const coding of value.split(',')) {
    const token = coding.trim();
    if (token !== '' && token.toLowerCase() !== 'identity') return false;
  }
  return true;
}

/** Undefined when the value is `application/json` with well-formed parameters and a UTF-8 charset. */
function contentTypeProblem(value: string): string | undefined {
  const semi = value.indexOf(';');
  const type = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
  if (type !== 'application/json') return 'unsupported media type: expected application/json';
  if (semi === -1) return undefined;
  let at = semi;
  while (at < value.length) {
    PARAMETER.lastIndex = at;
    const match = PARAMETER.exec(value);
    if (match === null) {
      // Only trailing whitespace may follow the last parameter.
      if (/^[ \t]*$/.test(value.slice(at))) return undefined;
      return 'unsupported media type: malformed Content-Type parameters';
    }
    at = PARAMETER.lastIndex;
    const name = match[1];
    if (name !== undefined && name.toLowerCase() === 'charset') {
      const raw = match[2] as string;
      const charset = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
      if (charset.toLowerCase() !== 'utf-8') return CHARSET_MESSAGE;
    }
  }
  return undefined;
}

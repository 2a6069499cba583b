/** Maps the ways an upstream can fail to the gateway's closed error set, in one place. */
import { GatewayError, isGatewayError } from '../jsonrpc/errors.ts';

export type UpstreamErrorKind = 'refused' | 'reset' | 'timeout' | 'protocol' | 'auth' | 'other';

const KIND_BY_CODE: Readonly<Record<string, UpstreamErrorKind>> = {
  ECONNREFUSED: 'refused',
  ENOTFOUND: 'refused',
  EHOSTUNREACH: 'refused',
  ENETUNREACH: 'refused',
  EAI_AGAIN: 'refused',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  UND_ERR_SOCKET: 'reset',
  UND_ERR_CLOSED: 'reset',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ETIMEDOUT: 'timeout',
  HPE_INVALID_CONSTANT: 'protocol',
  UND_ERR_INFO: 'protocol',
  UND_ERR_RESPONSE_STATUS_CODE: 'protocol',
  UND_ERR_INVALID_ARG: 'protocol',
};

export function upstreamErrorKind(err: unknown): UpstreamErrorKind {
  if (isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL') return 'protocol';
  if (isGatewayError(err) && err.code === 'ERR_UPSTREAM_AUTH') return 'auth';
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    // undici's HTTPParserError may carry no code (bytes that are not HTTP at all).
    if (current.name === 'HTTPParserError') return 'protocol';
    const code = (current as NodeJS.ErrnoException).code;
    if (code !== undefined) {
      const kind = KIND_BY_CODE[code];
      if (kind !== undefined) return kind;
      if (code.startsWith('HPE_')) return 'protocol';
    }
    current = current.cause;
  }
  return 'other';
}

export function mapUpstreamError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  const kind = upstreamErrorKind(err);
  if (kind === 'timeout') return new GatewayError('ERR_UPSTREAM_TIMEOUT', { cause: err });
  if (kind === 'protocol') return new GatewayError('ERR_UPSTREAM_PROTOCOL', { cause: err });
  return new GatewayError('ERR_UPSTREAM_UNAVAILABLE', { cause: err });
}

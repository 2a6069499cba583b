/**
 * The closed set of errors the gateway answers with. Steps throw a GatewayError; one function
 * (pipeline/respond.ts) turns it into an HTTP response with a JSON-RPC error body. Tests and callers
 * match on `code`, never on the message text. Messages never carry a secret, a host name or a stack.
 */

/** JSON-RPC 2.0 and MCP error codes used on the wire. */
export const RPC = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** MCP 2026-07-28: Mcp-Method / Mcp-Name header disagrees with the body. */
  HEADER_MISMATCH: -32020,
  /** Implementation-defined server errors (-32000..-32099). */
  UNAUTHORIZED: -32001,
  RATE_LIMITED: -32029,
  UPSTREAM: -32002,
  SHUTTING_DOWN: -32003,
  SESSION_NOT_FOUND: -32004,
} as const;

interface ErrorSpec {
  readonly status: number;
  readonly rpc: number;
  readonly message: string;
}

const SPECS = {
  ERR_AUTH_MISSING: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_MALFORMED: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** A credential header that is present but empty, or `Bearer` with no token (often an unset env var). */
  ERR_AUTH_EMPTY: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** Two credential headers, or Authorization and X-API-Key that disagree. */
  ERR_AUTH_DUPLICATE: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_UNKNOWN_KEY: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_KEY_DISABLED: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_KEY_EXPIRED: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_KEY_IN_QUERY: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_NOT_CONFIGURED: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** OAuth bearer tokens (JWTs): every refusal is a 401 invalid_token; the code says why (audit, metrics). */
  ERR_AUTH_TOKEN_MALFORMED: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_TOKEN_ALGORITHM: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_TOKEN_SIGNATURE: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_TOKEN_UNKNOWN_KEY: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** The JWK set (or the issuer's discovery document) could not be fetched, and no cached key fits. */
  ERR_AUTH_TOKEN_KEYS_UNAVAILABLE: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_TOKEN_EXPIRED: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** `nbf` or `iat` in the future beyond `clock_tolerance`. */
  ERR_AUTH_TOKEN_NOT_YET_VALID: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  ERR_AUTH_TOKEN_ISSUER: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** A token minted for another resource (RFC 8707). */
  ERR_AUTH_TOKEN_AUDIENCE: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** A required claim is missing or of the wrong type, or an unexpected `typ`. */
  ERR_AUTH_TOKEN_CLAIMS: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** A valid token without one of `auth.oauth.required_scopes`. */
  ERR_INSUFFICIENT_SCOPE: { status: 403, rpc: RPC.UNAUTHORIZED, message: 'insufficient scope' },
  ERR_SESSION_NOT_FOUND: { status: 404, rpc: RPC.SESSION_NOT_FOUND, message: 'session not found' },
  ERR_TOOL_DENIED: { status: 200, rpc: RPC.INVALID_PARAMS, message: 'unknown tool' },
  ERR_PROMPT_DENIED: { status: 200, rpc: RPC.INVALID_PARAMS, message: 'unknown prompt' },
  /** A tool whose definition is not as pinned (answered exactly like ERR_TOOL_DENIED). */
  ERR_TOOL_UNPINNED: { status: 200, rpc: RPC.INVALID_PARAMS, message: 'unknown tool' },
  /** A prompt whose definition is not as pinned (answered exactly like ERR_PROMPT_DENIED). */
  ERR_PROMPT_UNPINNED: { status: 200, rpc: RPC.INVALID_PARAMS, message: 'unknown prompt' },
  ERR_RESOURCE_DENIED: { status: 200, rpc: RPC.INVALID_PARAMS, message: 'resource not found' },
  ERR_METHOD_DENIED: { status: 200, rpc: RPC.METHOD_NOT_FOUND, message: 'method not found' },
  /** A task id this principal does not own (answered like a server that does not know it). */
  ERR_TASK_DENIED: { status: 200, rpc: RPC.INVALID_PARAMS, message: 'task not found' },
  /** A request whose params the policy cannot judge (e.g. tools/call without a string name). */
  ERR_INVALID_PARAMS: { status: 200, rpc: RPC.INVALID_PARAMS, message: 'invalid params' },
  ERR_BATCH_DENIED: {
    status: 200,
    rpc: RPC.INVALID_REQUEST,
    message: 'batch refused: it contains a request that was denied',
  },
  ERR_RATE_LIMITED: { status: 429, rpc: RPC.RATE_LIMITED, message: 'rate limit exceeded for this key' },
  ERR_TOO_MANY_STREAMS: { status: 429, rpc: RPC.RATE_LIMITED, message: 'too many open streams for this key' },
  /** The key has `max_in_flight` requests at the upstream already. */
  ERR_TOO_MANY_IN_FLIGHT: {
    status: 429,
    rpc: RPC.RATE_LIMITED,
    message: 'too many requests in flight for this key',
  },
  ERR_RATE_LIMIT_STORE: { status: 503, rpc: RPC.INTERNAL_ERROR, message: 'rate limit store unavailable' },
  ERR_PARSE: { status: 400, rpc: RPC.PARSE_ERROR, message: 'parse error' },
  ERR_INVALID_REQUEST: { status: 400, rpc: RPC.INVALID_REQUEST, message: 'invalid request' },
  ERR_HEADER_MISMATCH: { status: 400, rpc: RPC.HEADER_MISMATCH, message: 'header mismatch' },
  ERR_BODY_TOO_LARGE: { status: 413, rpc: RPC.INVALID_REQUEST, message: 'request body too large' },
  /** An `Expect` other than 100-continue (RFC 9110 §10.1.1), answered before anything is read. */
  ERR_EXPECTATION_FAILED: {
    status: 417,
    rpc: RPC.INVALID_REQUEST,
    message: 'expectation failed: only Expect: 100-continue is supported',
  },
  ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    rpc: RPC.INVALID_REQUEST,
    message: 'unsupported media type: expected application/json',
  },
  /** A Host header this gateway does not serve (DNS rebinding protection). */
  ERR_HOST_DENIED: { status: 403, rpc: RPC.INVALID_REQUEST, message: 'host not allowed' },
  /** A browser request from an origin not in cors.allowed_origins. */
  ERR_ORIGIN_DENIED: { status: 403, rpc: RPC.INVALID_REQUEST, message: 'origin not allowed' },
  ERR_NOT_FOUND: { status: 404, rpc: RPC.METHOD_NOT_FOUND, message: 'not found' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, rpc: RPC.INVALID_REQUEST, message: 'method not allowed' },
  ERR_UPSTREAM_UNAVAILABLE: { status: 502, rpc: RPC.UPSTREAM, message: 'upstream unavailable' },
  ERR_UPSTREAM_TIMEOUT: { status: 504, rpc: RPC.UPSTREAM, message: 'upstream timed out' },
  ERR_UPSTREAM_PROTOCOL: { status: 502, rpc: RPC.UPSTREAM, message: 'upstream sent an invalid response' },
  /** The upstream answered 401/403: it refused the gateway's own credentials (`upstream.headers`). */
  ERR_UPSTREAM_AUTH: {
    status: 502,
    rpc: RPC.UPSTREAM,
    message: "upstream refused the gateway's credentials",
  },
  ERR_CLIENT_ABORTED: { status: 499, rpc: RPC.INTERNAL_ERROR, message: 'client closed the request' },
  /**
   * A request was read or a stream (GET, subscriptions/listen) was opening while a reload swapped the
   * config: refused, the client sends it again and is judged by the new one.
   */
  ERR_CONFIG_RELOADED: {
    status: 503,
    rpc: RPC.INTERNAL_ERROR,
    message: 'the configuration changed while this request was received: retry',
  },
  /** An open stream's key or token expired: the gateway ended it (a request would now get 401). */
  ERR_STREAM_EXPIRED: { status: 401, rpc: RPC.UNAUTHORIZED, message: 'unauthorized' },
  /** The client took none of the response's bytes for `limits.send_timeout`: the gateway cut it. */
  ERR_CLIENT_STALLED: {
    status: 499,
    rpc: RPC.INTERNAL_ERROR,
    message: 'client stopped reading the response',
  },
  ERR_SHUTTING_DOWN: { status: 503, rpc: RPC.SHUTTING_DOWN, message: 'gateway is shutting down' },
  /**
   * The audit destination is not taking lines (a full disk, a reader gone): a request whose line
   * could be lost is not run (see audit/writer.ts accepting()).
   */
  ERR_AUDIT_UNAVAILABLE: {
    status: 503,
    rpc: RPC.INTERNAL_ERROR,
    message: 'audit log unavailable: retry shortly',
  },
  /**
   * `limits.max_buffered_bytes` is spent: a request body is refused with 503 (retry shortly); a
   * response the gateway must hold to filter is refused with 502.
   */
  ERR_OVERLOADED: { status: 503, rpc: RPC.INTERNAL_ERROR, message: 'gateway busy: retry shortly' },
  ERR_INTERNAL: { status: 500, rpc: RPC.INTERNAL_ERROR, message: 'internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof SPECS;
export const ERROR_CODES = Object.freeze(Object.keys(SPECS)) as readonly ErrorCode[];

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly rpcCode: number;
  /** Extra response headers (Retry-After, WWW-Authenticate ...). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** The JSON-RPC id to answer with when the thrower knows it better than the pipeline. */
  readonly rpcId: string | number | null | undefined;

  constructor(
    code: ErrorCode,
    options: {
      message?: string;
      cause?: unknown;
      headers?: Record<string, string>;
      status?: number;
      rpcId?: string | number | null;
    } = {},
  ) {
    const spec: ErrorSpec = SPECS[code];
    super(
      options.message ?? spec.message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'GatewayError';
    this.code = code;
    this.status = options.status ?? spec.status;
    this.rpcCode = spec.rpc;
    this.headers = options.headers;
    this.rpcId = options.rpcId;
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return value instanceof GatewayError;
}

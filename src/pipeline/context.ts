/**
 * One RequestContext per HTTP request to the MCP endpoint. Steps fill it in; the audit step reads
 * it once, when the response has finished, whatever happened. That is how "exactly one audit line
 * per request" stays true without effort.
 */
import { headerRevision } from './protocol-version.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../jsonrpc/errors.ts';
import type { JsonRpcId, JsonRpcMessage } from '../jsonrpc/message.ts';
import type { Principal } from '../auth/principal.ts';
import type { PinReport } from '../pinning/pins.ts';
import type { Withheld } from '../policy/roots.ts';

/** `aborted`: the client left before its request was judged or forwarded (never `allow`). */
export type Decision =
  'allow' | 'deny' | 'rate_limited' | 'unauthenticated' | 'invalid' | 'upstream_error' | 'aborted';

/** What the gateway decided about one JSON-RPC message of the body. */
export interface CallRecord {
  rpc_method: string | undefined;
  rpc_id: JsonRpcId | null;
  tool?: string;
  prompt?: string;
  resource?: string;
  decision: Decision;
  reason?: ErrorCode;
}

export interface RequestContext {
  readonly requestId: string;
  /** Wall-clock start (ms since epoch) and a monotonic start for durations. */
  readonly startedAt: number;
  readonly startedMono: number;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly clientIp: string;
  principal: Principal | undefined;
  /** Parsed messages of a POST body (undefined for GET/DELETE or unparsable bodies). */
  messages: readonly JsonRpcMessage[] | undefined;
  batch: boolean;
  calls: CallRecord[];
  decision: Decision;
  reason: ErrorCode | undefined;
  status: number;
  upstreamStartMono: number | undefined;
  upstreamMs: number | undefined;
  bytesIn: number;
  bytesOut: number;
  /** A short, non-reversible tag of the session (never the raw id). */
  session: string | undefined;
  protocolVersion: string | undefined;
  aborted: boolean;
  /** The gateway cut this response when the shutdown grace period ended. */
  cutByShutdown: boolean;
  /** Set when the rate-limit store failed and `on_store_error` decided (its reason). */
  rateLimitFallback: string | undefined;
  /** Events of a GET stream the gateway did not pass on (HTTP+SSE transport streams). */
  eventsFiltered: number | undefined;
  /** The roots a client's roots answers in this request were not allowed to lend (policy/roots.ts). */
  rootsWithheld: Withheld | undefined;
  /** Set once the response has been handed to the audit writer. */
  finished: boolean;
  /** Tool and prompt definitions first seen not as pinned in this request's responses. */
  pinReports: PinReport[] | undefined;
}

export function createContext(
  requestId: string,
  req: IncomingMessage,
  res: ServerResponse,
  now: number,
  mono: number,
): RequestContext {
  return {
    requestId,
    startedAt: now,
    startedMono: mono,
    req,
    res,
    clientIp: req.socket.remoteAddress ?? '',
    principal: undefined,
    messages: undefined,
    batch: false,
    calls: [],
    decision: 'allow',
    reason: undefined,
    status: 0,
    upstreamStartMono: undefined,
    upstreamMs: undefined,
    bytesIn: 0,
    bytesOut: 0,
    session: undefined,
    protocolVersion: headerRevision(req.headers),
    aborted: false,
    cutByShutdown: false,
    rateLimitFallback: undefined,
    eventsFiltered: undefined,
    rootsWithheld: undefined,
    finished: false,
    pinReports: undefined,
  };
}

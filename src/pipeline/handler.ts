/**
 * The request pipeline for the MCP endpoint, as a table of contents:
 *
 *   site (Host, Origin; CORS preflight) -> method check -> authenticate -> session binding
 *   -> read body (envelope first) -> inspect (parse, judge)
 *   -> rate limit -> answer a denial | proxy (stream, rewrite lists) -> audit (on close)
 *
 * With `upstream.transport: sse` one hook (`transport`, src/transport/sse/) says where a POST goes
 * and what its judgement leads to, and reads the GET stream its answers come back on.
 *
 * One RequestContext per request; the observer (audit + metrics) reads it exactly once, when the
 * response has closed, whatever happened.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from './context.ts';
import { createContext } from './context.ts';
import type {
  AuthenticateStep,
  Clock,
  InspectStep,
  Observer,
  RateLimitStep,
  SessionStep,
  TransportStep,
} from './ports.ts';
import { sendError, sendJson, toGatewayError } from './respond.ts';
import { GatewayError, isGatewayError } from '../jsonrpc/errors.ts';
import { peekRequestId } from './peek-id.ts';
import type { Upstream } from '../proxy/upstream.ts';
import type { RequestHeaders } from '../proxy/request-headers.ts';
import { checkBodyEnvelope } from './envelope.ts';
import type { SiteCheck } from './site.ts';
import type { Cors } from '../server/cors.ts';
import { Relay } from '../proxy/relay.ts';
import { KeepaliveWheel } from '../proxy/keepalive.ts';
import type { RelayConfig, RelayHooks, ResponseRewrite } from '../proxy/relay.ts';
import { mapUpstreamError, upstreamErrorKind } from '../proxy/upstream-error.ts';
import { requestIdFor } from './request-id.ts';
import type { IntegrityStep } from '../integrity/step.ts';
import type { HeadersTimeout } from '../proxy/timeouts.ts';
import type { ReadBody } from './read-body.ts';
import { createHeavyGate } from './heavy-gate.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';
import type { ResponseHead } from '../proxy/response-headers.ts';
import { InflightList } from './inflight.ts';

export interface HandlerDeps {
  readonly upstream: Upstream;
  /** The allowlisted request headers toward the upstream. */
  readonly requestHeaders: RequestHeaders;
  /** Host and Origin checks (DNS rebinding), before authentication. */
  readonly checkSite: SiteCheck;
  readonly cors: Cors;
  /** Which upstream responses are refused, and which of their headers the client sees. */
  readonly responseHead: ResponseHead;
  readonly keepaliveMs: number;
  /** Headers timeout for a request's messages (quick methods vs tool calls; see proxy/timeouts.ts). */
  readonly headersTimeout?: HeadersTimeout;
  readonly readBody: ReadBody;
  /** The process-wide budget for held bodies (limits.max_buffered_bytes). */
  readonly budget: BufferBudget;
  /** The steps built from the config; read once per request, swapped whole by a reload. */
  readonly steps: { readonly current: PipelineSteps };
  /** The older HTTP+SSE transport, when the upstream speaks it; undefined for Streamable HTTP. */
  readonly transport: TransportStep | undefined;
  readonly observer: Observer;
  readonly clock: Clock;
}

export interface PipelineSteps {
  readonly authenticate: AuthenticateStep;
  readonly sessions: SessionStep | undefined;
  readonly inspect: InspectStep;
  /** Request tagging and response matching (the rewrite of every POST's and GET's response). */
  readonly integrity: IntegrityStep;
  readonly rateLimit: RateLimitStep;
}

/** Requests not yet finished: how many, and (a copy of) their contexts. */
export interface Inflight extends Iterable<RequestContext> {
  readonly size: number;
}

export interface Handler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Requests not yet finished (for graceful shutdown). */
  readonly inflight: Inflight;
  /** Refuse new requests with 503 from now on. */
  drain(): void;
  /** Open GET streams (a reload ends those whose principal it refuses). */
  readonly streams: ReadonlyMap<RequestContext, unknown>;
  /** Ends one open GET stream and cancels its upstream request. */
  endStream(ctx: RequestContext): void;
  /** Ends every open GET stream (they carry no pending result; clients reconnect elsewhere). */
  endStreams(): void;
}

const ALLOW = 'GET, POST, DELETE';
/** How much of an unauthenticated body is read to answer with its id. */
const AUTH_PEEK_BYTES = 16 * 1024;

export function createHandler(deps: HandlerDeps): Handler {
  const { upstream, clock, observer, transport } = deps;
  const allow = transport?.allow ?? ALLOW;
  const methods = new Set(allow.split(', '));
  const inflight = new InflightList<Exchange>();
  /** Open GET streams, with their exchange (to end the upstream side too). */
  const streams = new Map<RequestContext, Exchange>();
  let draining = false;
  const heavyTurn = createHeavyGate();
  const shared: Shared = { deps, streams, inflight };
  const relayConfig: RelayConfig = {
    keepalive: new KeepaliveWheel(deps.keepaliveMs),
    budget: deps.budget,
    head: deps.responseHead,
  };

  /** The whole request; never rejects (a failure becomes the error response). */
  async function run(ex: Exchange): Promise<void> {
    const ctx = ex.ctx;
    try {
      await steps(ex, ctx);
    } catch (err) {
      fail(ctx, err);
    }
  }

  async function steps(ex: Exchange, ctx: RequestContext): Promise<void> {
    const { req, res } = ctx;
    // One set of steps for the whole request, even if a reload swaps them meanwhile.
    const steps = deps.steps.current;
    ex.steps = steps;
    if (draining) throw new GatewayError('ERR_SHUTTING_DOWN', { headers: { connection: 'close' } });
    const method = req.method;
    try {
      deps.checkSite(ctx);
      if (deps.cors.preflight(req, res)) {
        ctx.status = 204;
        return;
      }
      if (method === undefined || !methods.has(method)) {
        throw new GatewayError('ERR_METHOD_NOT_ALLOWED', { headers: { allow } });
      }
      const pending = steps.authenticate(ctx);
      if (pending !== undefined) await pending;
    } catch (err) {
      throw await withPeekedId(ctx, err);
    }

    const clientSession = req.headers['mcp-session-id'];
    let sessionId: string | undefined;
    if (clientSession !== undefined) {
      if (typeof clientSession !== 'string') throw new GatewayError('ERR_SESSION_NOT_FOUND');
      sessionId = steps.sessions ? steps.sessions.inbound(ctx, clientSession) : clientSession;
    }

    const route = method === 'POST' ? transport?.post(ctx) : undefined;
    let body: Buffer | undefined;
    let rewrite: ResponseRewrite | undefined;
    let headersTimeout: number | undefined;
    if (method === 'POST') {
      checkBodyEnvelope(req.headers);
      // A key whose bucket is known to be empty is refused before its body is read.
      try {
        steps.rateLimit.admit(ctx);
      } catch (err) {
        throw await withPeekedId(ctx, err);
      }
      const raw = await deps.readBody(req, res);
      ctx.bytesIn = raw.length;
      // A large body waits its turn, so other keys' requests are served between large parses.
      const turn = heavyTurn(raw.length);
      if (turn !== undefined) await turn;
      if (res.destroyed) return;
      let inspection;
      try {
        inspection = steps.inspect(ctx, raw);
      } catch (err) {
        // An unparsable or invalid body takes a token like any request (429 once the bucket is empty).
        await steps.rateLimit.chargeRefused(ctx);
        throw err;
      }
      const taken = steps.rateLimit.consume(ctx);
      if (taken !== undefined) await taken;
      if (route) inspection = route.judged(inspection);
      if (inspection.answer) {
        sendJson(ctx, inspection.answer.status, inspection.answer.body);
        return;
      }
      ({ bytes: body, rewrite } = steps.integrity.forward(
        ctx,
        inspection.bytes,
        inspection.plans,
        sessionId,
      ));
      // A tool call may take minutes before its headers; quick methods keep the pool's timeout.
      if (deps.headersTimeout !== undefined) headersTimeout = deps.headersTimeout(ctx.messages);
    } else if (method === 'GET') {
      rewrite = transport ? transport.stream(ctx) : steps.integrity.stream(ctx);
      ex.release = steps.rateLimit.openStream(ctx);
      streams.set(ctx, ex);
      observer.streamOpened();
    } else if (method === 'DELETE') {
      rewrite = steps.integrity.closing(ctx);
    }
    if (res.destroyed) return;

    const relay = new Relay(res, relayConfig, rewrite, ex);
    ex.relay = relay;
    ex.forwarded = true;
    ctx.upstreamStartMono = clock.mono();
    const headers = deps.requestHeaders(req.headers, ctx.clientIp, ctx.requestId, sessionId, body?.length);
    (method === 'GET' ? upstream.streams : upstream.pool).dispatch(
      {
        origin: upstream.origin,
        path: route?.path ?? upstream.path,
        method,
        headers,
        body: body ?? null,
        // undefined keeps the pool's own headers timeout.
        headersTimeout,
      },
      relay,
    );
  }

  /** Turns a failure of the request's steps into its answer (or a cut connection). */
  function fail(ctx: RequestContext, err: unknown): void {
    const error = toGatewayError(err);
    if (ctx.decision === 'allow') ctx.decision = decisionFor(error.code);
    if (error.code === 'ERR_CLIENT_ABORTED') {
      ctx.aborted = true;
      ctx.reason ??= error.code;
      ctx.res.destroy();
      return;
    }
    sendError(ctx, error);
  }

  /**
   * A refusal before the body is read still answers with the request's id: read a small body
   * (bounded, so a refused client cannot make the gateway hold much) just to find it.
   */
  async function withPeekedId(ctx: RequestContext, err: unknown): Promise<unknown> {
    if (ctx.req.method !== 'POST' || !isGatewayError(err) || err.rpcId !== undefined) return err;
    const peeked = await peekRequestId(ctx.req, AUTH_PEEK_BYTES, deps.budget);
    ctx.bytesIn = peeked.bytes;
    return new GatewayError(err.code, {
      message: err.message,
      status: err.status,
      headers: { ...err.headers },
      rpcId: peeked.id,
    });
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const ctx = createContext(requestIdFor(req), req, res, clock.now(), clock.mono());
    res.setHeader('x-request-id', ctx.requestId);
    // Every answer to an allowed browser origin carries CORS headers, errors included.
    const corsHeaders = deps.cors.headersFor(req.headers.origin);
    if (corsHeaders !== undefined) for (const name in corsHeaders) res.setHeader(name, corsHeaders[name]!);
    const ex = new Exchange(ctx, shared);
    inflight.add(ex);
    (res as Carrier)[EXCHANGE] = ex;
    res.on('close', onResponseClose);
    void run(ex);
  }

  /** Ends an open GET stream cleanly and cancels its upstream side. */
  function endStream(ctx: RequestContext): void {
    const ex = streams.get(ctx);
    if (ex === undefined) return;
    ctx.res.end();
    ex.relay?.abort(new Error('stream ended by the gateway'));
  }

  return Object.assign(handle, {
    inflight: {
      get size() {
        return inflight.size;
      },
      [Symbol.iterator]: () => contextsOf(inflight.entries()),
    },
    streams: streams as ReadonlyMap<RequestContext, unknown>,
    endStream,
    drain() {
      draining = true;
    },
    endStreams() {
      for (const ctx of [...streams.keys()]) endStream(ctx);
    },
  });
}

function contextsOf(exchanges: readonly Exchange[]): Iterator<RequestContext> {
  return exchanges.map((ex) => ex.ctx).values();
}

/** What every request of one handler shares. */
interface Shared {
  readonly deps: HandlerDeps;
  readonly streams: Map<RequestContext, Exchange>;
  readonly inflight: InflightList<Exchange>;
}

/** The response carries its exchange, so one shared listener serves every request's 'close'. */
const EXCHANGE = Symbol('mcpgate.exchange');
type Carrier = ServerResponse & { [EXCHANGE]?: Exchange };

function onResponseClose(this: ServerResponse): void {
  (this as Carrier)[EXCHANGE]?.closed();
}

/**
 * One request's state beside its context: the relay, the stream slot, whether it was forwarded.
 * It is the relay's hooks too (methods, not per-request closures).
 */
class Exchange implements RelayHooks {
  readonly ctx: RequestContext;
  private readonly shared: Shared;
  /** The steps this request runs with (set when it starts). */
  steps: PipelineSteps | undefined = undefined;
  relay: Relay | undefined = undefined;
  /** A GET stream's slot. */
  release: (() => void) | undefined = undefined;
  /** The request was handed to the upstream client. */
  forwarded = false;
  /** Links of the handler's list of requests not yet finished (inflight.ts). */
  prevInflight: Exchange | undefined = undefined;
  nextInflight: Exchange | undefined = undefined;

  constructor(ctx: RequestContext, shared: Shared) {
    this.ctx = ctx;
    this.shared = shared;
  }

  onStart(status: number, headers: Record<string, string | string[]>, upstream: IncomingHttpHeaders): void {
    const ctx = this.ctx;
    const { deps } = this.shared;
    ctx.status = status;
    ctx.upstreamMs = deps.clock.mono() - (ctx.upstreamStartMono as number);
    deps.cors.decorate(headers, ctx.req.headers.origin);
    const issued = upstream['mcp-session-id'];
    if (typeof issued === 'string') {
      const sessions = this.steps?.sessions;
      headers['mcp-session-id'] = sessions ? sessions.outbound(ctx, issued) : issued;
    }
    if (status >= 500) {
      ctx.decision = 'upstream_error';
    }
  }

  onBytes(n: number): void {
    this.ctx.bytesOut += n;
  }

  onDone(error: Error | undefined): void {
    if (error === undefined) return;
    const ctx = this.ctx;
    const res = ctx.res;
    // The client left, or the shutdown cut the response: not the upstream's failure.
    // The gateway itself ended the response (shutdown, reload): nothing more to send.
    if (ctx.aborted || ctx.cutByShutdown || res.destroyed || res.writableEnded) return;
    const kind = upstreamErrorKind(error);
    this.shared.deps.observer.upstreamError(kind, error);
    ctx.decision = 'upstream_error';
    sendError(ctx, mapUpstreamError(error));
  }

  /** The response closed (finished or cut): settle the context and hand it to the observer, once. */
  closed(): void {
    const ctx = this.ctx;
    if (ctx.finished) return;
    const res = ctx.res;
    const { streams, inflight, deps } = this.shared;
    if (!res.writableFinished) {
      ctx.aborted = true;
      this.relay?.abort(new Error('client closed the request'));
      // Gone before the request was judged or forwarded: never recorded as allowed.
      if (!this.forwarded && ctx.decision === 'allow') {
        ctx.decision = ctx.cutByShutdown ? 'deny' : 'aborted';
        ctx.reason ??= 'ERR_CLIENT_ABORTED';
      }
    }
    if (this.release) {
      this.release();
      streams.delete(ctx);
      deps.observer.streamClosed();
    }
    if (ctx.status === 0) ctx.status = res.headersSent ? res.statusCode : 499;
    inflight.delete(this);
    ctx.finished = true;
    deps.observer.finish(ctx);
  }
}

function decisionFor(code: string): RequestContext['decision'] {
  if (code === 'ERR_CLIENT_ABORTED') return 'aborted';
  if (code === 'ERR_OVERLOADED') return 'rate_limited';
  if (code.startsWith('ERR_AUTH_')) return 'unauthenticated';
  if (code === 'ERR_RATE_LIMITED' || code === 'ERR_TOO_MANY_STREAMS') return 'rate_limited';
  if (code.startsWith('ERR_UPSTREAM_')) return 'upstream_error';
  if (code.endsWith('_DENIED') || code.endsWith('_UNPINNED') || code === 'ERR_SESSION_NOT_FOUND')
    return 'deny';
  if (code === 'ERR_RATE_LIMIT_STORE') return 'rate_limited';
  if (code === 'ERR_SHUTTING_DOWN') return 'deny';
  return 'invalid';
}

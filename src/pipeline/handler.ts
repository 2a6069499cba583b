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
import type { IncomingMessage, ServerResponse } from 'node:http';
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
import { sendJson, setOwnHeaders, toGatewayError } from './respond.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import { isRequest } from '../jsonrpc/message.ts';
import type { Upstream } from '../proxy/upstream.ts';
import type { RequestHeaders } from '../proxy/request-headers.ts';
import { checkBodyEnvelope, checkNoBody } from './envelope.ts';
import { checkProtocolVersion } from './protocol-version.ts';
import { checkBodylessHeaders } from '../policy/headers.ts';
import type { SiteCheck } from './site.ts';
import type { Cors } from '../server/cors.ts';
import { Relay } from '../proxy/relay.ts';
import { KeepaliveWheel } from '../proxy/keepalive.ts';
import type { RelayConfig, ResponseRewrite } from '../proxy/relay.ts';
import { requestIdFor } from './request-id.ts';
import type { IntegrityStep } from '../integrity/step.ts';
import type { HeadersTimeout } from '../proxy/timeouts.ts';
import type { ReadBody } from './read-body.ts';
import { createHeavyGate } from './heavy-gate.ts';
import type { BufferBudget } from '../proxy/body-buffer.ts';
import type { ResponseHead } from '../proxy/response-headers.ts';
import { InflightList } from './inflight.ts';
import { Exchange, exchangeOf } from './exchange.ts';
import type { Shared } from './exchange.ts';
import { chargedWithPeekedId, fail, failOnStream, withPeekedId } from './failure.ts';
import { bodyBytesRead, unsupportedExpectation } from './read-body.ts';
import { ExpiryWatch } from './stream-expiry.ts';
import { opensListen } from './listen.ts';
import { admitStream, refuseIfReloaded } from './stream-admission.ts';
import type { KeyShares } from '../proxy/key-shares.ts';
import { closedBeforeTurn } from '../server/connect.ts';
import type { Opened } from '../integrity/event-ids.ts';

/** The POST holds a request (a message with a method and an id): the upstream answers it later. */
function holdsRequest(ctx: RequestContext): boolean {
  return ctx.messages?.some(isRequest) === true;
}

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
  /** limits.send_timeout: how long a response may wait for its client to take bytes (none: forever). */
  readonly sendTimeoutMs?: number | undefined;
  /** Headers timeout for a request's messages (quick methods vs tool calls; see proxy/timeouts.ts). */
  readonly headersTimeout?: HeadersTimeout;
  readonly readBody: ReadBody;
  /** The process-wide budget for held bodies (limits.max_buffered_bytes). */
  readonly budget: BufferBudget;
  /**
   * The smaller budget the bounded peeks for a refused request's id are read against (failure.ts):
   * refused requests, unauthenticated ones included, never take what keys' bodies need.
   */
  readonly peekBudget?: BufferBudget | undefined;
  /**
   * Each key's share of the body budget (key-shares.ts): one key's bodies, held back a byte short of
   * their end or waiting on their answers, cannot take all of it; none: the budget alone.
   */
  readonly shares?: KeyShares | undefined;
  /** Told the size of every upstream body chunk (server/young-sweep.ts), when there is one. */
  readonly sweep?: { add(bytes: number): void } | undefined;
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
  /**
   * Open streams: GET streams and 2026-07-28 subscriptions/listen answers (a reload ends those whose
   * principal it refuses).
   */
  readonly streams: ReadonlyMap<RequestContext, unknown>;
  /**
   * What the gateway still judges as it comes: the open streams, and the forwarded requests whose
   * answer has not begun or is an SSE stream (a reload ends those of a key it refuses or changed).
   */
  answering(): RequestContext[];
  /**
   * Ends one open stream and cancels its upstream request; one the upstream has not answered yet
   * gets `refusal` (the error a request made now would get).
   */
  endStream(ctx: RequestContext, refusal: unknown): void;
  /**
   * Whether the open stream of `ctx` still owes answers to requests POSTed on its session (an
   * HTTP+SSE session's stream); if so, `settled` is called once it owes none.
   */
  owes(ctx: RequestContext, settled: () => void): boolean;
  /**
   * An open stream a reload kept, whose key's expiry changed (`expiresAt`, undefined: none): it ends
   * when the new one passes, as a stream opened now would, not when the old one does.
   */
  rewatch(ctx: RequestContext, expiresAt: number | undefined): void;
  /** Ends every open stream (they carry no pending result; clients reconnect elsewhere). */
  endStreams(): void;
  /**
   * The shutdown's grace ended: ends every response the upstream is still answering as endStream
   * ends a stream (each request a stream still owes an answer gets `gateway is shutting down`, one
   * not answered yet gets 503 and that error), and marks every request in flight cut by the
   * shutdown. What cannot be ended so (not forwarded yet, a body being pumped) is left to be cut.
   */
  endInflight(): void;
}

const ALLOW = 'GET, POST, DELETE';
const RETRY_SOON = Object.freeze({ 'retry-after': '1' });

export function createHandler(deps: HandlerDeps): Handler {
  const { upstream, clock, observer, transport } = deps;
  const allow = transport?.allow ?? ALLOW;
  const methods = new Set(allow.split(', '));
  const inflight = new InflightList<Exchange>();
  /** Open GET streams, with their exchange (to end the upstream side too). */
  const streams = new Map<RequestContext, Exchange>();
  let draining = false;
  const heavyTurn = createHeavyGate();
  const now = () => clock.now();
  const peekBudget = deps.peekBudget ?? deps.budget;
  const shared: Shared = { deps, streams, inflight };
  const relayConfig: RelayConfig = {
    keepalive: new KeepaliveWheel(deps.keepaliveMs),
    budget: deps.budget,
    head: deps.responseHead,
    ...(deps.sweep ? { sweep: deps.sweep } : {}),
    ...(deps.sendTimeoutMs !== undefined ? { sendTimeoutMs: deps.sendTimeoutMs } : {}),
  };

  /**
   * The whole request; never rejects (a failure becomes the error response). One async function
   * (not a wrapper awaiting the steps): one promise and one suspended frame per request.
   */
  async function run(ex: Exchange): Promise<void> {
    const ctx = ex.ctx;
    try {
      const { req, res } = ctx;
      // One set of steps for the whole request, even if a reload swaps them meanwhile.
      const steps = deps.steps.current;
      ex.steps = steps;
      if (draining) throw new GatewayError('ERR_SHUTTING_DOWN', { headers: { connection: 'close' } });
      const method = req.method;
      try {
        deps.checkSite(ctx);
        if (method === 'OPTIONS') setOwnHeaders(ctx);
        if (deps.cors.preflight(req, res)) {
          ctx.status = 204;
          return;
        }
        if (method === undefined || !methods.has(method)) {
          throw new GatewayError('ERR_METHOD_NOT_ALLOWED', { headers: { allow } });
        }
        if (unsupportedExpectation(req)) throw new GatewayError('ERR_EXPECTATION_FAILED');
        // Fail closed: a request whose audit line could be lost does not run.
        if (observer.accepting?.() === false)
          throw new GatewayError('ERR_AUDIT_UNAVAILABLE', { headers: RETRY_SOON });
        const pending = steps.authenticate(ctx);
        if (pending !== undefined) await pending;
      } catch (err) {
        throw await withPeekedId(ctx, err, peekBudget);
      }
      // Pipelined behind an answer that closes the connection: never answered, so never processed
      // (its line names the key, and says 499).
      if (closedBeforeTurn(res)) throw new GatewayError('ERR_CLIENT_ABORTED');

      const clientSession = req.headers['mcp-session-id'];
      let sessionId: string | undefined;
      let resumed: Opened | undefined;
      let route;
      try {
        checkProtocolVersion(req.headers, ctx.protocolVersion);
        if (method !== 'POST') {
          checkNoBody(req.headers);
          const mirrored = checkBodylessHeaders(req.headers);
          if (mirrored !== undefined) throw mirrored;
        }
        if (clientSession !== undefined) {
          if (typeof clientSession !== 'string') throw new GatewayError('ERR_SESSION_NOT_FOUND');
          sessionId = steps.sessions ? steps.sessions.inbound(ctx, clientSession) : clientSession;
        }
        route = method === 'POST' ? transport?.post(ctx) : undefined;
        // A stream resumed after an event: only at a point of this key's own streams.
        if (method === 'GET' && transport === undefined) resumed = steps.integrity.resume(ctx, sessionId);
      } catch (err) {
        // A protocol version that is none, a session id the gateway did not issue (or one gone), or
        // an event id it did not seal for this key, takes a token like any refusal.
        throw await chargedWithPeekedId(ctx, err, steps.rateLimit, peekBudget);
      }
      let body: Buffer | undefined;
      let rewrite: ResponseRewrite | undefined;
      let headersTimeout: number | undefined;
      let listen = false;
      if (method === 'POST') {
        // Paid for before its body is read: with an empty bucket it gets 429 unread (but for the
        // bounded peek for its id).
        try {
          const paid = steps.rateLimit.prepay(ctx);
          if (paid !== undefined) await paid;
          // Refused for its envelope (415) before its body is read (its token taken all the same).
          checkBodyEnvelope(req.headers);
        } catch (err) {
          throw await withPeekedId(ctx, err, peekBudget);
        }
        // A client that left while it was authenticated or paying was settled already.
        if (res.destroyed || ctx.finished) return;
        // The body holds the key's share of the budget, as its bytes arrive, until its response ends.
        const owner = deps.shares === undefined ? undefined : ctx.principal?.limits?.id;
        let raw: Buffer;
        try {
          raw = await deps.readBody(req, res, owner === undefined ? undefined : deps.shares?.for(owner));
        } catch (err) {
          // Refused for its body (413, 503 over the buffer budget or the key's share of it) or
          // dropped by its client.
          ctx.bytesIn = bodyBytesRead(req);
          throw err;
        }
        ctx.bytesIn = raw.length;
        // A large body waits its turn, so other keys' requests are served between large parses.
        const turn = heavyTurn(raw.length);
        if (turn !== undefined) await turn;
        if (res.destroyed) return;
        let inspection;
        try {
          // An unparsable or invalid body was paid for like any request.
          inspection = steps.inspect(ctx, raw);
          const taken = steps.rateLimit.consume(ctx);
          if (taken !== undefined) await taken;
          // Judged by the config still running when its body ended, not one a reload replaced.
          refuseIfReloaded(ctx, steps, deps.steps.current);
        } catch (err) {
          // On the HTTP+SSE transport the refusal goes on the stream, where the client waits for it.
          if (route !== undefined && failOnStream(ctx, err, route)) return;
          throw err;
        }
        if (route) inspection = route.judged(inspection);
        if (inspection.answer) {
          sendJson(ctx, inspection.answer.status, inspection.answer.body);
          return;
        }
        // A 2026-07-28 notification stream: held like a GET stream (its own pool, a slot of the
        // key's max_streams, ended by a reload that refuses its key or when its credential expires).
        if (route === undefined && opensListen(ctx)) {
          listen = true;
          const admitted = admitStream(ctx, steps, deps.steps.current, clock.now());
          if (admitted !== undefined) await admitted;
          if (res.destroyed || ctx.finished) return;
          holdStream(ex, steps);
        } else {
          // A request (not a stream) holds one of the shared upstream connections until its answer
          // ends: one of its key's max_in_flight slots too. Taken before its ids are tagged, so a
          // refused request leaves nothing in the map of pending cancellations (cancels.ts). Not for a
          // request whose response already closed (its slot would never be given back), nor for a
          // body of responses and notifications only: the upstream takes it at once (202), and a
          // client's reply to an elicitation must reach the call waiting on it whatever it holds.
          if (ctx.finished) return;
          if (holdsRequest(ctx)) ex.upstreamSlot = steps.rateLimit.enterUpstream(ctx);
        }
        // On the HTTP+SSE transport the route names the upstream session (there is no Mcp-Session-Id)
        // and what the tags are signed for.
        let opened, tags;
        ({
          bytes: body,
          rewrite,
          opened,
          tags,
        } = steps.integrity.forward(
          ctx,
          inspection.bytes,
          inspection.plans,
          route?.session ?? sessionId,
          route?.signedFor,
        ));
        ex.opened = opened;
        // HTTP+SSE: accepted, its requests are owed on the session's GET stream (transport/sse/owed.ts).
        if (route?.accepted !== undefined && tags !== undefined) {
          const accepted = route.accepted;
          const forwarded = tags;
          ex.accepted = () => accepted(forwarded);
        }
        // A tool call may take minutes before its headers; quick methods keep the pool's timeout.
        if (deps.headersTimeout !== undefined) headersTimeout = deps.headersTimeout(ctx.messages);
      } else if (method === 'GET') {
        // A stream opened takes a token, as a request does (and a slot of the key's max_streams).
        const paid = steps.rateLimit.prepay(ctx);
        if (paid !== undefined) await paid;
        // A client that left while it was authenticated (an OAuth token's verification is
        // awaited) or paying was settled already: a stream slot taken now would never be given back.
        if (res.destroyed || ctx.finished) return;
        const admitted = admitStream(ctx, steps, deps.steps.current, clock.now());
        if (admitted !== undefined) await admitted;
        if (res.destroyed || ctx.finished) return;
        rewrite = transport ? transport.stream(ctx) : steps.integrity.stream(ctx, sessionId, resumed);
        holdStream(ex, steps);
      } else if (method === 'DELETE') {
        // A DELETE reaches the upstream like a message: it takes a token like one.
        const paid = steps.rateLimit.prepay(ctx);
        if (paid !== undefined) await paid;
        refuseIfReloaded(ctx, steps, deps.steps.current);
        rewrite = steps.integrity.closing(ctx);
      }
      // (holdStream's expiry watch may have ended a stream whose credential ran out just now.)
      if (res.destroyed || res.writableEnded) return;
      // An answer due before this one may have closed the connection while this request was read.
      if (closedBeforeTurn(res)) throw new GatewayError('ERR_CLIENT_ABORTED');
      // The shutdown's grace ended while its body came (or a Redis decision was awaited): it was
      // told cut (endInflight), and its clients' 250 ms to take their errors is no time to start it.
      if (ctx.cutByShutdown)
        throw new GatewayError('ERR_SHUTTING_DOWN', { headers: { connection: 'close' } });

      const relay = new Relay(res, relayConfig, rewrite, ex);
      ex.relay = relay;
      ex.forwarded = true;
      ctx.upstreamStartMono = clock.mono();
      const headers = deps.requestHeaders(
        req.headers,
        ctx.clientIp,
        ctx.requestId,
        sessionId,
        body !== undefined,
        resumed?.id,
      );
      (method === 'GET' || listen ? upstream.streams : upstream.pool).dispatch(
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
    } catch (err) {
      fail(ctx, err);
    }
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const ctx = createContext(requestIdFor(req), req, res, clock.now(), clock.mono());
    // X-Request-Id goes out with each answer's head (setOwnHeaders, and the relay with the
    // upstream's): nothing is set on the response ahead, so a relayed head takes Node's fast path.
    // Every answer to an allowed browser origin carries CORS headers, errors included.
    const corsHeaders = deps.cors.headersFor(req.headers.origin);
    if (corsHeaders !== undefined) for (const name in corsHeaders) res.setHeader(name, corsHeaders[name]!);
    const ex = new Exchange(ctx, shared);
    ex.open();
    void run(ex);
  }

  /**
   * A stream held open (a GET, a subscriptions/listen POST): a slot of the key's max_streams (429
   * beyond), listed for reloads and shutdown, and ended when its credential expires.
   */
  function holdStream(ex: Exchange, steps: PipelineSteps): void {
    const ctx = ex.ctx;
    ex.release = steps.rateLimit.openStream(ctx);
    streams.set(ctx, ex);
    observer.streamOpened();
    ex.expiry = ExpiryWatch.start(ctx, ctx.principal?.expiresAt, now, expire);
  }

  /**
   * Ends an open stream cleanly and cancels its upstream side. A stream the upstream has not answered
   * yet (no head sent: its headers are late, or a listen's JSON answer is held whole) gets `refusal`,
   * its status and JSON-RPC error: ended as it is, it was a bare 200 with no body, which a client
   * reads as an empty stream or a listen with no answer, and its audit line said `allow`.
   */
  function endStream(ctx: RequestContext, refusal: unknown): void {
    const ex = streams.get(ctx) ?? exchangeOf(ctx.res);
    if (ex !== undefined && !ctx.finished) endExchange(ex, refusal);
  }

  function endExchange(ex: Exchange, refusal: unknown): void {
    const ctx = ex.ctx;
    const reason = new Error('stream ended by the gateway');
    // (The relay ends what it relays: a stream through its rewriter, whose owed answers get the
    // refusal, then watched; a body its head gave a length is cut.)
    if (ctx.res.headersSent) {
      const error = toGatewayError(refusal);
      if (ex.relay !== undefined) ex.relay.end(reason, error);
      else ctx.res.end();
      // Cut (a pumped body): its line names why, or it reads as a client that left. (A stream ended
      // whole at shutdown was delivered as it was: no reason; a reload's and an expiry's set theirs.)
      if (ctx.res.destroyed) ctx.reason ??= error.code;
      return;
    }
    fail(ctx, refusal);
    ex.relay?.abort(reason);
  }

  /**
   * The expiry watch ends a stream. One not answered yet gets the refusal a request made now gets
   * (401 and its challenge), from authenticating it again as admitStream does: at once when that is
   * known at once (an API key), so a stream that expires as it opens is not forwarded.
   */
  function expire(ctx: RequestContext): void {
    const expired = new GatewayError('ERR_STREAM_EXPIRED');
    if (ctx.res.headersSent) return endStream(ctx, expired);
    const probe: RequestContext = { ...ctx, principal: undefined, reason: undefined };
    let pending: void | Promise<void>;
    try {
      pending = deps.steps.current.authenticate(probe);
    } catch (err) {
      return endStream(ctx, err);
    }
    // Accepted after all (the wall clock stepped back): it ends all the same, as the watch decided.
    if (pending === undefined) return endStream(ctx, expired);
    pending.then(
      () => endStream(ctx, expired),
      (err: unknown) => endStream(ctx, err),
    );
  }

  return Object.assign(handle, {
    inflight: {
      get size() {
        return inflight.size;
      },
      [Symbol.iterator]: () => contextsOf(inflight.entries()),
    },
    streams: streams as ReadonlyMap<RequestContext, unknown>,
    answering() {
      const open = [...streams.keys()];
      for (const ex of inflight.entries()) {
        const res = ex.ctx.res;
        // An answer written whole (a JSON body judged before it went out) has nothing left to judge.
        if (streams.has(ex.ctx) || !ex.forwarded || res.writableEnded) continue;
        if (!res.headersSent || ex.relay?.streaming === true) open.push(ex.ctx);
      }
      return open;
    },
    endStream,
    owes: (ctx: RequestContext, settled: () => void) => transport?.owes?.(ctx, settled) === true,
    rewatch(ctx: RequestContext, expiresAt: number | undefined) {
      const ex = streams.get(ctx);
      if (ex === undefined || ctx.finished) return;
      ex.expiry?.cancel();
      ex.expiry = ExpiryWatch.start(ctx, expiresAt, now, expire);
    },
    drain() {
      draining = true;
    },
    endStreams() {
      const refusal = new GatewayError('ERR_SHUTTING_DOWN', { headers: { connection: 'close' } });
      for (const ctx of [...streams.keys()]) {
        // An HTTP+SSE stream carries the answers to its session's requests in flight: it is given
        // the grace they are, and ends once it owes none (or when the grace ends, endInflight).
        if (transport?.owes?.(ctx, () => endStream(ctx, refusal)) === true) continue;
        endStream(ctx, refusal);
      }
    },
    endInflight() {
      const refusal = new GatewayError('ERR_SHUTTING_DOWN', { headers: { connection: 'close' } });
      for (const ex of inflight.entries()) {
        const ctx = ex.ctx;
        ctx.cutByShutdown = true;
        // A response still going when the grace ends was cut short, whatever it owed.
        ctx.reason ??= 'ERR_SHUTTING_DOWN';
        const res = ctx.res;
        // Not at the upstream yet (its body still coming, or waiting its turn): cut, as before.
        if (ex.relay === undefined || res.destroyed || res.writableEnded) continue;
        // Cut bare, a POST stream's client waited for the answers it was owed until its own timeout.
        endExchange(ex, refusal);
      }
    },
  });
}

function contextsOf(exchanges: readonly Exchange[]): Iterator<RequestContext> {
  return exchanges.map((ex) => ex.ctx).values();
}

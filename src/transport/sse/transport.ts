/**
 * The older HTTP+SSE transport (MCP 2024-11-05), as one hook into the pipeline (`upstream.transport:
 * sse`). The client GETs the gateway's path and receives the upstream's stream, with its `endpoint`
 * event rewritten to the gateway's own path and a signed session (endpoint.ts). It POSTs there; each
 * POST runs the same steps as a Streamable HTTP POST (authenticate, read, judge, rate limit, tag its
 * requests) and is forwarded to the upstream's endpoint, whose 202 passes through. Responses come
 * back on the GET stream, where each is judged by the request it answers (responses.ts).
 *
 * The gateway's own answers (denied calls) must reach the client on its GET stream too, since a
 * client of this transport ignores a POST's body. They are written there when the POST reaches the
 * process holding that stream; on another replica the answer goes in the POST's body, as on
 * Streamable HTTP (route a session's POSTs on its `session` parameter to avoid that), and so it
 * does when the stream is gone or its client has left MAX_INJECTED_BACKLOG unread.
 */
import type { RequestContext } from '../../pipeline/context.ts';
import type { Inspection, PostRoute, TransportStep } from '../../pipeline/ports.ts';
import type { ResponseRewrite } from '../../proxy/relay.ts';
import { serializeEvent } from '../../proxy/sse.ts';
import { GatewayError } from '../../jsonrpc/errors.ts';
import type { Principal } from '../../auth/principal.ts';
import { sessionTag } from '../../auth/session-binding.ts';
import type { EndpointSessions } from './endpoint.ts';
import { sessionParam } from './endpoint.ts';
import type { StreamMatcher } from './responses.ts';
import { createStreamRewriter } from './stream.ts';
import { MAX_ENDPOINTS, sessionBinding } from './session-ids.ts';
import { MAX_PIN_VIOLATIONS } from '../../audit/record.ts';
import { OwedAnswers } from './owed.ts';
import type { Untagged } from '../../integrity/request-tag.ts';

export interface SseTransportOptions {
  readonly sessions: EndpointSessions;
  readonly responses: StreamMatcher;
}

const ACCEPTED = Object.freeze({ status: 202, body: '' });

export function createSseTransport(options: SseTransportOptions): TransportStep {
  const { sessions, responses } = options;
  /** The GET streams this process holds, by the session it handed out on each. */
  const open = new Map<string, RequestContext>();
  /** What each GET stream owes: answers to the requests of POSTs its upstream accepted (owed.ts). */
  const owing = new WeakMap<RequestContext, OwedAnswers>();

  function principalOf(ctx: RequestContext): Principal {
    const principal = ctx.principal;
    if (principal === undefined) throw new TypeError('the sse transport runs after authentication');
    return principal;
  }

  return {
    allow: 'GET, POST',

    stream(ctx): ResponseRewrite {
      const principal = principalOf(ctx);
      /** The sessions handed out on this stream, its last MAX_ENDPOINTS, oldest first. */
      const issued: string[] = [];
      /** The upstream endpoints those sessions stand for: answers to requests POSTed there pass. */
      const paths: string[] = [];
      ctx.eventsFiltered = 0;
      const filtered = () => void (ctx.eventsFiltered = (ctx.eventsFiltered ?? 0) + 1);
      const owed = new OwedAnswers();
      owing.set(ctx, owed);
      const answered = (mac: string) => owed.answered(mac);
      /** The error the gateway ended the stream with (the shutdown's, a reload's, an expiry's). */
      let endedBy: GatewayError | undefined;
      ctx.res.once('close', () => {
        for (const session of issued) if (open.get(session) === ctx) open.delete(session);
      });
      return {
        // A JSON body is no stream of this transport: refused (a 502), never passed on unread.
        json() {
          throw new GatewayError('ERR_UPSTREAM_PROTOCOL');
        },
        endedBy(error) {
          endedBy = error;
        },
        sse(budget) {
          // Definitions not as pinned go on this stream's audit line (the first MAX_PIN_VIOLATIONS:
          // a stream may live for days).
          const match = responses(
            principal,
            paths,
            (report) => {
              const reports = (ctx.pinReports ??= []);
              if (reports.length < MAX_PIN_VIOLATIONS) reports.push(report);
            },
            answered,
          );
          const rewriter = createStreamRewriter(
            {
              onEndpoint(data) {
                const endpoint = sessions.issue(data, principal.bindingId);
                if (endpoint === undefined) return undefined;
                issued.push(endpoint.session);
                paths.push(endpoint.path);
                open.set(endpoint.session, ctx);
                // Only the last MAX_ENDPOINTS are kept (answers to older ones are dropped anyway):
                // an upstream sending endpoint events cannot grow a stream that lives for days.
                if (issued.length > MAX_ENDPOINTS) {
                  const old = issued.shift() as string;
                  paths.shift();
                  if (!issued.includes(old) && open.get(old) === ctx) open.delete(old);
                }
                ctx.session = sessionTag(endpoint.session);
                return endpoint.endpoint;
              },
              onMessage(data) {
                const matched = match(data);
                if (matched?.filtered) filtered();
                return matched?.data;
              },
              onFiltered: filtered,
            },
            undefined,
            budget,
          );
          return {
            push: (chunk) => rewriter.push(chunk),
            release: () => rewriter.release(),
            // Ended by the gateway: each request still owed gets its error, and the line says why.
            end() {
              const out = rewriter.end();
              if (endedBy === undefined || owed.size === 0) return out;
              ctx.reason ??= endedBy.code;
              if (endedBy.code === 'ERR_SHUTTING_DOWN' && ctx.decision === 'allow') ctx.decision = 'deny';
              return [...out, ...owed.errors(endedBy)];
            },
          };
        },
      };
    },

    owes(ctx, settled) {
      return owing.get(ctx)?.whenSettled(settled) === true;
    },

    post(ctx): PostRoute {
      const session = sessionParam(ctx.req.url);
      ctx.session = session === undefined ? undefined : sessionTag(session);
      const principal = principalOf(ctx);
      const path = session === undefined ? undefined : sessions.resolve(session, principal.bindingId);
      if (path === undefined) {
        ctx.reason = 'ERR_SESSION_NOT_FOUND';
        throw new GatewayError('ERR_SESSION_NOT_FOUND');
      }
      // Counted by its session's stream until it closes: the shutdown leaves that stream open for
      // the answer it may yet owe (owed.ts), as for the requests of POSTs already accepted.
      const owedBy = open.get(session as string);
      const owed = owedBy === undefined ? undefined : owing.get(owedBy);
      if (owed !== undefined) {
        owed.entered();
        ctx.res.once('close', () => owed.left());
      }
      return {
        path,
        // One upstream session per endpoint: two clients of one key (each numbering its requests
        // from 0) must not cancel each other's requests, nor take each other's answers.
        session: path,
        signedFor: sessionBinding(path, principal.bindingId),
        accepted(tags: ReadonlyMap<string, Untagged>): void {
          const stream = open.get(session as string);
          const owed = stream === undefined ? undefined : owing.get(stream);
          if (owed === undefined) return;
          owed.accepted(tags);
          // The requests it cancels are answered no more (owed.ts cancelled).
          for (const m of ctx.messages ?? [])
            if ('method' in m && m.method === 'notifications/cancelled' && !('id' in m)) {
              const named = m.params?.requestId;
              if (typeof named === 'string' || typeof named === 'number') owed.cancelled(named);
            }
        },
        judged(inspection: Inspection): Inspection {
          const stream = open.get(session as string);
          if (inspection.answer === undefined || stream === undefined) return inspection;
          if (inspection.answer.body !== '' && !inject(stream, inspection.answer.body)) return inspection;
          return { ...inspection, answer: ACCEPTED };
        },
      };
    },
  };
}

/**
 * Most of the gateway's own answers a GET stream may hold unsent (its `writableLength`): a client
 * that stops reading its stream while it POSTs calls the gateway denies would otherwise make the
 * gateway hold every denial (each echoes the client's id and tool name, up to the body limit).
 */
export const MAX_INJECTED_BACKLOG = 1024 * 1024;

/**
 * Writes the gateway's answer on a GET stream as a message event. Safe between any two writes: the
 * stream's rewriter only ever writes whole events (and the relay whole keepalive comments). False
 * when it was not written: the stream is gone, or it would hold more than MAX_INJECTED_BACKLOG
 * unsent (the answer then goes in the POST's body, as it does on another replica).
 */
function inject(stream: RequestContext, body: string): boolean {
  const res = stream.res;
  if (res.destroyed || res.writableEnded || !res.headersSent) return false;
  const event = serializeEvent({ event: 'message', data: body });
  const size = Buffer.byteLength(event);
  if (res.writableLength + size > MAX_INJECTED_BACKLOG) return false;
  stream.bytesOut += size;
  res.write(event);
  return true;
}

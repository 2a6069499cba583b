/**
 * Session binding: the Mcp-Session-Id the client sees is the upstream's id signed for the
 * principal that opened it. Another key presenting it gets 404, as if it did not exist, and the
 * request never reaches the upstream. Stateless across restarts and replicas (an HMAC).
 */
import type { SessionStep } from './ports.ts';
import type { SessionBinder } from '../auth/session-binding.ts';
import { sessionTag } from '../auth/session-binding.ts';
import { GatewayError } from '../jsonrpc/errors.ts';

/** Verified (principal, session id) pairs remembered, so a session's requests skip the HMAC. */
export const VERIFIED_CACHE_SIZE = 10_000;

export function createSessionStep(binder: SessionBinder): SessionStep {
  // Only successes are cached (a forged id is recomputed every time, never remembered), keyed by
  // the exact id the client sent and answered only for the principal it was verified for, and the
  // map is cleared when full: bounded, no eviction order. A bound id verifies for one binding id
  // only, so keying by the id alone loses nothing, and spares building and hashing a key of the
  // binding id and the id on every request.
  const verified = new Map<string, Verified>();
  // The client id issued for an upstream session id, by principal: the upstream names its session
  // on every response (the SDK's servers do), and wrapping it again would cost an HMAC and a hash
  // per response for the same answer (wrap is a pure function of the two ids). Bounded the same way.
  const issued = new Map<string, Issued>();
  function remember(upstreamId: string, entry: Issued): void {
    if (issued.size >= VERIFIED_CACHE_SIZE) issued.clear();
    issued.set(upstreamId, entry);
  }
  return {
    inbound(ctx, clientSessionId) {
      const bindingId = ctx.principal?.bindingId;
      const hit = verified.get(clientSessionId);
      if (hit !== undefined && bindingId !== undefined && hit.bindingId === bindingId) {
        ctx.session = hit.tag;
        return hit.upstreamId;
      }
      ctx.session = sessionTag(clientSessionId);
      const upstreamId = bindingId === undefined ? undefined : binder.unwrap(clientSessionId, bindingId);
      if (upstreamId === undefined) {
        ctx.reason = 'ERR_SESSION_NOT_FOUND';
        throw new GatewayError('ERR_SESSION_NOT_FOUND');
      }
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.clear();
      verified.set(clientSessionId, { bindingId: bindingId as string, upstreamId, tag: ctx.session });
      remember(upstreamId, { bindingId: bindingId as string, clientId: clientSessionId, tag: ctx.session });
      return upstreamId;
    },
    outbound(ctx, upstreamSessionId) {
      const bindingId = ctx.principal?.bindingId;
      if (bindingId === undefined) throw new TypeError('outbound session without a principal');
      const hit = issued.get(upstreamSessionId);
      if (hit !== undefined && hit.bindingId === bindingId) {
        ctx.session = hit.tag;
        return hit.clientId;
      }
      const clientId = binder.wrap(upstreamSessionId, bindingId);
      ctx.session = sessionTag(clientId);
      remember(upstreamSessionId, { bindingId, clientId, tag: ctx.session });
      return clientId;
    },
  };
}

/** A client session id verified for one principal. */
interface Verified {
  readonly bindingId: string;
  readonly upstreamId: string;
  readonly tag: string;
}

/** The client session id wrapped for one principal. */
interface Issued {
  readonly bindingId: string;
  readonly clientId: string;
  readonly tag: string;
}

/**
 * Session binding: the Mcp-Session-Id the client sees is the upstream's id signed for the
 * principal that opened it. Another key presenting it gets 404, as if it did not exist, and the
 * request never reaches the upstream. Stateless across restarts and replicas (an HMAC).
 */
import type { SessionStep } from './ports.ts';
import type { SessionBinder } from '../auth/session-binding.ts';
import { sessionTag } from '../auth/session-binding.ts';
import { GatewayError } from '../jsonrpc/errors.ts';

export function createSessionStep(binder: SessionBinder): SessionStep {
  return {
    inbound(ctx, clientSessionId) {
      ctx.session = sessionTag(clientSessionId);
      const bindingId = ctx.principal?.bindingId;
      const upstreamId = bindingId === undefined ? undefined : binder.unwrap(clientSessionId, bindingId);
      if (upstreamId === undefined) {
        ctx.reason = 'ERR_SESSION_NOT_FOUND';
        throw new GatewayError('ERR_SESSION_NOT_FOUND');
      }
      return upstreamId;
    },
    outbound(ctx, upstreamSessionId) {
      const bindingId = ctx.principal?.bindingId;
      if (bindingId === undefined) throw new TypeError('outbound session without a principal');
      const clientId = binder.wrap(upstreamSessionId, bindingId);
      ctx.session = sessionTag(clientId);
      return clientId;
    },
  };
}

/** Builds the pipeline's steps from the config, once. */
import type { Config } from '../config/schema.ts';
import type { AuthenticateStep, InspectStep, RateLimitStep, SessionStep } from '../pipeline/ports.ts';
import type { GatewayDeps } from './gateway.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import { parseBody } from '../jsonrpc/parse.ts';
import { ALLOW_ALL } from '../policy/grants.ts';

export interface Steps {
  readonly authenticate: AuthenticateStep;
  readonly sessions: SessionStep | undefined;
  readonly inspect: InspectStep;
  readonly rateLimit: RateLimitStep;
  close(): Promise<void>;
}

const ANONYMOUS = Object.freeze({
  kind: 'anonymous' as const,
  name: 'anonymous',
  keyId: undefined,
  bindingId: 'anonymous',
  grants: ALLOW_ALL,
  limits: undefined,
});

export async function createSteps(config: Config, _deps: GatewayDeps): Promise<Steps> {
  const authenticate: AuthenticateStep = config.auth.allow_unauthenticated
    ? (ctx) => {
        ctx.principal = ANONYMOUS;
      }
    : (ctx) => {
        ctx.reason = 'ERR_AUTH_NOT_CONFIGURED';
        throw new GatewayError('ERR_AUTH_NOT_CONFIGURED', { headers: { 'www-authenticate': 'Bearer realm="mcpgate"' } });
      };
  const known = new Map<string, string>();
  const inspect: InspectStep = (ctx, body) => {
    const parsed = parseBody(body, known);
    ctx.messages = parsed.messages;
    ctx.batch = parsed.batch;
    return { bytes: parsed.bytes, answer: undefined, rewrite: undefined };
  };
  const rateLimit: RateLimitStep = { consume() {}, openStream: () => () => {} };
  return { authenticate, sessions: undefined, inspect, rateLimit, close: async () => {} };
}

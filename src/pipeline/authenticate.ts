/**
 * Step 1: authenticate. Every request to the MCP endpoint needs a valid key (GET and DELETE
 * included); the reason for a refusal goes to the audit record, never to the response.
 */
import type { AuthenticateStep } from './ports.ts';
import type { Keyring } from '../auth/keyring.ts';
import { extractCredential } from '../auth/credentials.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { Principal } from '../auth/principal.ts';

export const WWW_AUTHENTICATE = 'Bearer realm="mcpgate"';

export function createAuthenticate(keyring: Keyring): AuthenticateStep {
  const challenge = Object.freeze({ 'www-authenticate': WWW_AUTHENTICATE });
  return function authenticate(ctx) {
    const { req } = ctx;
    const credential = extractCredential(req.headers, req.rawHeaders, req.url ?? '/');
    const result = credential.ok ? keyring.authenticate(credential.secret) : credential;
    if (!result.ok) {
      ctx.reason = result.code;
      throw new GatewayError(result.code, { headers: challenge });
    }
    ctx.principal = result.principal;
  };
}

/** `auth.allow_unauthenticated`: everyone is the same anonymous principal with every grant. */
export function createAnonymous(principal: Principal): AuthenticateStep {
  return function authenticate(ctx) {
    ctx.principal = principal;
  };
}

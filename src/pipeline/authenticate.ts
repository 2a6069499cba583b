/**
 * Step 1: authenticate. Every request to the MCP endpoint needs a valid credential (GET and DELETE
 * included): an API key, or with `auth.oauth` a bearer JWT, told apart by form. The reason for a
 * refusal goes to the audit record, never to the response.
 */
import type { AuthenticateStep } from './ports.ts';
import type { RequestContext } from './context.ts';
import type { AuthResult, Keyring } from '../auth/keyring.ts';
import { extractCredential, isJwtShaped } from '../auth/credentials.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { Principal } from '../auth/principal.ts';
import type { TokenAuthentication } from '../auth/oauth/authenticator.ts';
import { MAX_TOKEN_LENGTH } from '../auth/oauth/authenticator.ts';

export const WWW_AUTHENTICATE = 'Bearer realm="mcpgate"';

const KEY_CHALLENGE = Object.freeze({ 'www-authenticate': WWW_AUTHENTICATE });

/** Either may be absent (not both): keys only, OAuth only, or both on one gateway. */
export function createAuthenticate(
  keyring: Keyring | undefined,
  oauth?: TokenAuthentication,
): AuthenticateStep {
  if (keyring === undefined && oauth === undefined)
    throw new TypeError('createAuthenticate: nothing to check');
  const challenges = oauth?.challenges;
  const options = oauth ? { maxLength: MAX_TOKEN_LENGTH } : {};

  function settle(ctx: RequestContext, result: AuthResult): void {
    if (result.ok) {
      ctx.principal = result.principal;
      return;
    }
    ctx.reason = result.code;
    if (result.code === 'ERR_INSUFFICIENT_SCOPE') {
      ctx.decision = 'deny';
      // Who was refused, for the audit line (`sub`, `client_id`); nothing after this reads it.
      ctx.principal = result.principal;
      throw new GatewayError(result.code, { headers: challenges?.insufficientScope });
    }
    const headers =
      challenges === undefined
        ? KEY_CHALLENGE
        : result.code === 'ERR_AUTH_MISSING' || result.code === 'ERR_AUTH_EMPTY'
          ? challenges.missing
          : challenges.invalid;
    throw new GatewayError(result.code, { headers });
  }

  return function authenticate(ctx) {
    const { req } = ctx;
    const credential = extractCredential(req.headers, req.rawHeaders, req.url ?? '/', options);
    if (!credential.ok) return settle(ctx, credential);
    if (oauth !== undefined && (keyring === undefined || isJwtShaped(credential.secret))) {
      const result = oauth.authenticate(credential.secret);
      if (result instanceof Promise) return result.then((r) => settle(ctx, r));
      return settle(ctx, result);
    }
    settle(ctx, (keyring as Keyring).authenticate(credential.secret));
  };
}

/** `auth.allow_unauthenticated`: everyone is the same anonymous principal with every grant. */
export function createAnonymous(principal: Principal): AuthenticateStep {
  return function authenticate(ctx) {
    ctx.principal = principal;
  };
}

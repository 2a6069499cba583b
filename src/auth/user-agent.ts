/**
 * The client's User-Agent as the gateway logs and forwards it: as sent, unless it looks like a
 * credential (a client that put its key or token in the wrong header). Such a value is neither
 * written to the audit line (REDACTED stands in its place) nor sent upstream, which is the
 * promise for keys and tokens wherever a client puts them.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { looksLikeCredential } from './query-credential.ts';

export const REDACTED = '[redacted: looks like a credential]';

/** The User-Agent to forward: undefined when absent or when it looks like a credential. */
export function forwardedUserAgent(headers: IncomingHttpHeaders): string | undefined {
  const ua = headers['user-agent'];
  return typeof ua === 'string' && !looksLikeCredential(ua) ? ua : undefined;
}

/** The User-Agent to log: REDACTED in place of one that looks like a credential. */
export function loggedUserAgent(headers: IncomingHttpHeaders): string | undefined {
  const ua = headers['user-agent'];
  if (typeof ua !== 'string') return undefined;
  return looksLikeCredential(ua) ? REDACTED : ua;
}

/**
 * Finds the authorization server's JWK set URL from its issuer: OpenID Connect discovery
 * (`<issuer>/.well-known/openid-configuration`), else RFC 8414
 * (`<origin>/.well-known/oauth-authorization-server<path>`). Each fetch is bounded by a timeout; the
 * document must name exactly the configured issuer (RFC 8414 section 3.3), so a document served for
 * another issuer cannot point the gateway at someone else's keys, and an https issuer's must name an
 * https `jwks_uri`.
 */
import { readCapped } from './read-capped.ts';
import { checkHttpUrl } from '../../config/http-url.ts';

/** Largest discovery document read (real ones are a few KiB). */
export const MAX_DISCOVERY_BYTES = 256 * 1024;

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export class DiscoveryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DiscoveryError';
  }
}

/** The two well-known URLs to try, in order. */
export function discoveryUrls(issuer: string): string[] {
  const u = new URL(issuer);
  const path = u.pathname.replace(/\/+$/, '');
  return [
    `${u.origin}${path}/.well-known/openid-configuration`,
    `${u.origin}/.well-known/oauth-authorization-server${path}`,
  ];
}

export async function discoverJwksUri(
  issuer: string,
  options: { readonly fetch: FetchLike; readonly timeoutMs: number },
): Promise<string> {
  const problems: string[] = [];
  for (const url of discoveryUrls(issuer)) {
    try {
      return await fromDocument(url, issuer, options);
    } catch (err) {
      problems.push(`${url}: ${(err as Error).message}`);
    }
  }
  throw new DiscoveryError(`issuer discovery failed (${problems.join('; ')})`);
}

async function fromDocument(
  url: string,
  issuer: string,
  options: { readonly fetch: FetchLike; readonly timeoutMs: number },
): Promise<string> {
  const response = await options.fetch(url, {
    method: 'GET',
    headers: { accept: 'application/json' },
    redirect: 'error',
    signal: AbortSignal.timeout(options.timeoutMs),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new DiscoveryError(`status ${response.status}`);
  }
  const doc = JSON.parse(await readCapped(response, MAX_DISCOVERY_BYTES)) as unknown;
  if (typeof doc !== 'object' || doc === null) throw new DiscoveryError('not a JSON object');
  const { issuer: named, jwks_uri: jwksUri } = doc as Record<string, unknown>;
  if (named !== issuer) throw new DiscoveryError('the document names another issuer');
  if (typeof jwksUri !== 'string') throw new DiscoveryError('no jwks_uri');
  // Held to the check every URL the config names passes (an http(s) URL, no credentials, which the
  // log line naming the URL found would show: keys.ts, no fragment), as a configured jwks_uri is.
  const problem = checkHttpUrl(jwksUri);
  if (problem !== undefined) throw new DiscoveryError(`jwks_uri ${problem}`);
  const parsed = new URL(jwksUri);
  // The keys decide who gets in: an https issuer's keys are never fetched in cleartext, where anyone
  // on the path could answer with their own (a server behind a TLS proxy often writes http URLs).
  if (new URL(issuer).protocol === 'https:' && parsed.protocol !== 'https:')
    throw new DiscoveryError('jwks_uri is not https, but the issuer is');
  return parsed.href;
}

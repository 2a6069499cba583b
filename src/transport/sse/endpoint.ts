/**
 * The session in the HTTP+SSE transport's endpoint URL. The upstream's `endpoint` event names where
 * to POST (its own path and session parameter); the client is told instead to POST to the gateway's
 * own path with a `session` parameter: the upstream's endpoint (path and query, base64url) signed
 * for the principal that opened the stream, exactly as Mcp-Session-Id is (auth/session-binding.ts),
 * under a label of its own so that neither is ever accepted as the other. The client never learns
 * the upstream's address; a POST with another key, or with a session the gateway did not hand out,
 * resolves to nothing and never reaches the upstream.
 */
import { createSessionBinder, MAX_UPSTREAM_SESSION_ID } from '../../auth/session-binding.ts';

/** The query parameter of the gateway's endpoint URL. */
export const SESSION_PARAM = 'session';
const LABEL = 'mcpgate sse endpoint v1';
/**
 * Random bytes in each session handed out (base64url, after a `~`, which base64url never holds): an
 * upstream may name the same endpoint on every stream (one fixed path, no session id in it), and the
 * gateway writes its own answers (denied calls) on the stream that was handed the session a POST
 * names. Were the session the endpoint alone, two clients of one key would hold the same one, and
 * one client's denial went to the other's stream (an answer under an id it never sent), then, that
 * stream closed, in the POST's body, which a client of this transport never reads: its call hung.
 */
const NONCE_BYTES = 9;
const NONCE_CHARS = 12;
/** Longest upstream endpoint (path and query) the session can carry (base64url grows it by 4/3). */
export const MAX_ENDPOINT_BYTES = Math.floor(((MAX_UPSTREAM_SESSION_ID - NONCE_CHARS - 1) * 3) / 4);

export interface IssuedEndpoint {
  /** The `endpoint` event's data for the client: the gateway's path and the session. */
  readonly endpoint: string;
  readonly session: string;
  /** The upstream path (with query) the session stands for, as `resolve` gives it back. */
  readonly path: string;
}

export interface EndpointSessions {
  /**
   * The client's endpoint for the upstream's `endpoint` data, or undefined when the gateway will not
   * POST there (not a URL, another origin than the upstream's, too long).
   */
  issue(data: string, bindingId: string): IssuedEndpoint | undefined;
  /** The upstream path (with query) a session stands for, or undefined (forged, another key's). */
  resolve(session: string, bindingId: string): string | undefined;
}

/**
 * @param upstreamUrl the upstream's SSE URL: relative endpoints resolve against it, and only its
 *   origin is ever POSTed to.
 * @param gatewayPath the path clients reach the gateway's stream on (they POST to it too).
 * @param random the nonce of each session handed out (NONCE_BYTES).
 */
export function createEndpointSessions(
  secret: Buffer,
  upstreamUrl: string,
  gatewayPath: string,
  random: (n: number) => Buffer,
): EndpointSessions {
  const binder = createSessionBinder(secret, LABEL);
  const base = new URL(upstreamUrl);
  return {
    issue(data, bindingId) {
      let target: URL;
      try {
        target = new URL(data.trim(), base);
      } catch {
        return undefined;
      }
      if (target.origin !== base.origin) return undefined;
      const path = target.pathname + target.search;
      if (Buffer.byteLength(path) > MAX_ENDPOINT_BYTES) return undefined;
      const nonce = random(NONCE_BYTES).toString('base64url');
      const session = binder.wrap(`${Buffer.from(path).toString('base64url')}~${nonce}`, bindingId);
      return { endpoint: `${gatewayPath}?${SESSION_PARAM}=${session}`, session, path };
    },
    resolve(session, bindingId) {
      const encoded = binder.unwrap(session, bindingId);
      if (encoded === undefined) return undefined;
      // (A session without a nonce, handed out before it had one, names its endpoint alone.)
      const tilde = encoded.indexOf('~');
      const path = Buffer.from(tilde === -1 ? encoded : encoded.slice(0, tilde), 'base64url').toString(
        'utf8',
      );
      // Only a path the gateway itself encoded has a valid MAC; this keeps the check local anyway.
      return path.startsWith('/') ? path : undefined;
    },
  };
}

/** The `session` parameter of a request URL; undefined when absent, empty or given twice. */
export function sessionParam(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  const values = new URLSearchParams(url.slice(q + 1)).getAll(SESSION_PARAM);
  return values.length === 1 && values[0] !== '' ? values[0] : undefined;
}

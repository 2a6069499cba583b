/**
 * The session in the HTTP+SSE transport's endpoint URL. The upstream's `endpoint` event names where
 * to POST (its own path and session parameter); the client is told instead to POST to the gateway's
 * own path with a `session` parameter: the upstream's endpoint (path and query) sealed, then signed
 * for the principal that opened the stream, exactly as Mcp-Session-Id is (auth/session-binding.ts),
 * under a label of its own so that neither is ever accepted as the other. A POST with another key,
 * or with a session the gateway did not hand out, resolves to nothing and never reaches the upstream.
 *
 *   session = signed("~" + base64url(iv || AES-256-GCM(k, iv, path; aad = bindingId) || tag))
 *
 * with a random 96-bit iv and k = HMAC-SHA256(session secret, SEAL_LABEL). Sealed, not only signed:
 * the endpoint is the upstream's own text, and may hold what the client must not read (its session
 * id on the upstream, a token a server that authenticates by query puts in the endpoint it names,
 * the query of `upstream.url` echoed there). Base64url alone let every client read it.
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { createSessionBinder, MAX_UPSTREAM_SESSION_ID } from '../../auth/session-binding.ts';

/** The query parameter of the gateway's endpoint URL. */
export const SESSION_PARAM = 'session';
const LABEL = 'mcpgate sse endpoint v1';
const SEAL_LABEL = 'mcpgate sse endpoint seal v1';
/** Starts a sealed endpoint (base64url never holds it; an endpoint signed before it was sealed never starts so). */
const SEALED = '~';
/**
 * The seal's random iv makes each session handed out its own: an upstream may name the same endpoint
 * on every stream (one fixed path, no session id in it), and the gateway writes its own answers
 * (denied calls) on the stream that was handed the session a POST names. Were the session the
 * endpoint alone, two clients of one key would hold the same one, and one client's denial went to
 * the other's stream (an answer under an id it never sent), then, that stream closed, in the POST's
 * body, which a client of this transport never reads: its call hung.
 */
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Longest upstream endpoint (path and query) the session can carry (base64url grows the seal by 4/3). */
export const MAX_ENDPOINT_BYTES =
  Math.floor(((MAX_UPSTREAM_SESSION_ID - SEALED.length) * 3) / 4) - IV_BYTES - TAG_BYTES;

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
 * @param random the iv of each session handed out (IV_BYTES).
 */
export function createEndpointSessions(
  secret: Buffer,
  upstreamUrl: string,
  gatewayPath: string,
  random: (n: number) => Buffer,
): EndpointSessions {
  const binder = createSessionBinder(secret, LABEL);
  const key = createHmac('sha256', secret).update(SEAL_LABEL).digest();
  const base = new URL(upstreamUrl);

  function seal(path: string, bindingId: string): string {
    const iv = random(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(bindingId));
    const body = Buffer.concat([cipher.update(path, 'utf8'), cipher.final()]);
    return SEALED + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  function open(sealed: string, bindingId: string): string | undefined {
    const raw = Buffer.from(sealed.slice(SEALED.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(bindingId));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    try {
      return Buffer.concat([
        decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      return undefined;
    }
  }

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
      const session = binder.wrap(seal(path, bindingId), bindingId);
      return { endpoint: `${gatewayPath}?${SESSION_PARAM}=${session}`, session, path };
    },
    resolve(session, bindingId) {
      const encoded = binder.unwrap(session, bindingId);
      if (encoded === undefined) return undefined;
      // A session signed before endpoints were sealed (its MAC is this secret's: the gateway made
      // it) is `base64url(path)`, with `~nonce` after it or not: it still resolves across an upgrade.
      const tilde = encoded.indexOf('~');
      const path =
        tilde === 0
          ? open(encoded, bindingId)
          : Buffer.from(tilde === -1 ? encoded : encoded.slice(0, tilde), 'base64url').toString('utf8');
      if (path === undefined) return undefined;
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

/**
 * Sealed SSE event ids. An upstream's event ids name points in its event log, and an upstream that
 * replays by event id alone (one log for every session, as an event store shared across sessions
 * does) replays whatever follows that point to whoever presents it: another key's notifications and
 * server requests (elicitations, sampling), which carry no request tag the response matching could
 * refuse. So the client never sees the upstream's id: each `id:` field on a stream the gateway
 * relays is sealed for the principal the stream belongs to,
 *
 *   sealed = upstream id + "." + base64url(HMAC-SHA256(k, bindingId "\n" upstream id)[0..12])
 *
 * and a `Last-Event-ID` is forwarded only as the upstream id inside a seal made for the principal
 * that presents it (compared in constant time); any other is refused before the upstream. k =
 * HMAC-SHA256(session secret, LABEL), so replicas that share `auth.session_secret` open each
 * other's seals, and a seal is never a request tag or a session id.
 *
 * An initialize is tagged before its session exists (for the principal alone, step.ts), and a GET
 * stream of a session takes only tags signed for that session. A client whose initialize POST
 * stream ended after the server's priming event (SEP-1699: the SDK client) resumes it with a GET of
 * the new session, on whichever replica, or after a restart: the events of that POST stream carry
 * what the resume needs to take the initialize's answer, and nothing more,
 *
 *   opening = upstream id + "." + answer + "." + base64url(HMAC-SHA256(k', session "\n" answer "." upstream id)[0..12])
 *
 * where answer = base64url(SHA-256(the initialize's tag))[0..22] names the one answer the GET may take
 * (a digest: a tag holds the client's id, of any length), session is the upstream session the
 * initialize's answer opened and the principal, as step.ts inSession writes them (the session id
 * after its length, so the pair reads back one way only), and k' = HMAC-SHA256(secret,
 * OPENING_LABEL): a plain seal never opens as an opening nor one as the other, whatever dots the
 * upstream's id holds. An opening presented on another session, for another key, or changed, opens
 * as nothing and is refused; it names no tag but that initialize's, which only its own session's
 * GET stream takes.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import { createBindingMac } from './hmac.ts';

const LABEL = 'mcpgate event id v1';
const MAC_BYTES = 12;
/** base64url of 12 bytes, and the dot before it. */
const MAC_CHARS = 16;
const SEAL_CHARS = MAC_CHARS + 1;
const OPENING_LABEL = 'mcpgate event id v1 opening';
/** base64url characters of an answer's digest (132 bits of SHA-256). */
export const ANSWER_CHARS = 22;
/** The answer's digest, its dot, the MAC and its dot, after the upstream id. */
const OPENING_CHARS = ANSWER_CHARS + 1 + SEAL_CHARS;
const DIGEST = /^[A-Za-z0-9_-]{22}$/;

/** What a Last-Event-ID opens to. */
export interface Opened {
  /** The upstream's event id. */
  readonly id: string;
  /** The digest of the one initialize's tag the stream may take (answerDigest), for an opening. */
  readonly answer?: string | undefined;
}

export interface EventIds {
  /** The id the client sees for the upstream's `id` on a stream of `bindingId`. */
  seal(bindingId: string, id: string): string;
  /** The upstream's id in a `Last-Event-ID` sealed for `bindingId`; undefined for any other. */
  open(bindingId: string, presented: string): string | undefined;
  /**
   * The id the client sees for the upstream's `id` on the stream of an initialize whose answer
   * opened an upstream session: `session` is that session and the principal as step.ts inSession
   * writes them, and the id carries `answer` (answerDigest of the initialize's tag) to the GET that
   * resumes the stream.
   */
  sealOpening(session: string, answer: string, id: string): string;
  /**
   * A `Last-Event-ID` presented by `bindingId` on a GET of an upstream session (`session`, as
   * inSession writes it; undefined: none): the upstream id in a seal for `bindingId`, with the answer
   * an opening carries when it was made for that session and principal; undefined for any other.
   */
  resume(bindingId: string, session: string | undefined, presented: string): Opened | undefined;
}

/** The digest an opening carries of an initialize's tag: what the GET resuming its stream may take. */
export function answerDigest(tag: string): string {
  return hash('sha256', tag, 'base64url').slice(0, ANSWER_CHARS);
}

/** @param secret the session secret (at least 32 bytes). */
export function createEventIds(secret: Buffer): EventIds {
  if (!Buffer.isBuffer(secret) || secret.length < 32)
    throw new TypeError('the event id secret must be at least 32 bytes');
  const mac = createBindingMac(createHmac('sha256', secret).update(LABEL).digest(), MAC_BYTES);
  const openingMac = createBindingMac(createHmac('sha256', secret).update(OPENING_LABEL).digest(), MAC_BYTES);
  // The compared MACs as UTF-16 (lossless for any string), written, never allocated, per open.
  const expected = Buffer.alloc(MAC_CHARS * 2);
  const given = Buffer.alloc(MAC_CHARS * 2);
  function same(presentedMac: string, computed: string): boolean {
    expected.write(computed, 'utf16le');
    given.write(presentedMac, 'utf16le');
    return timingSafeEqual(given, expected);
  }
  function open(bindingId: string, presented: string): string | undefined {
    const dot = presented.length - SEAL_CHARS;
    if (dot < 0 || presented.charCodeAt(dot) !== 0x2e) return undefined;
    const id = presented.slice(0, dot);
    return same(presented.slice(dot + 1), mac(bindingId, id)) ? id : undefined;
  }
  return {
    seal(bindingId, id) {
      return `${id}.${mac(bindingId, id)}`;
    },
    open,
    sealOpening(session, answer, id) {
      if (!DIGEST.test(answer)) throw new TypeError('an opening carries an answer digest (answerDigest)');
      return `${id}.${answer}.${openingMac(session, `${answer}.${id}`)}`;
    },
    resume(bindingId, session, presented) {
      const id = open(bindingId, presented);
      if (id !== undefined) return { id };
      const dot = presented.length - OPENING_CHARS;
      if (session === undefined || dot < 0 || presented.charCodeAt(dot) !== 0x2e) return undefined;
      const macDot = presented.length - SEAL_CHARS;
      if (presented.charCodeAt(macDot) !== 0x2e) return undefined;
      const answer = presented.slice(dot + 1, macDot);
      if (!DIGEST.test(answer)) return undefined;
      const upstreamId = presented.slice(0, dot);
      const computed = openingMac(session, `${answer}.${upstreamId}`);
      return same(presented.slice(macDot + 1), computed) ? { id: upstreamId, answer } : undefined;
    },
  };
}

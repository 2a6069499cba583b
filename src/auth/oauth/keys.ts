/**
 * The authorization server's signing keys: discovery (unless `jwks_uri` is configured), then jose's
 * remote JWK set, which caches the keys, refetches on an unknown `kid` (key rotation) at most once
 * per cooldown, and bounds each fetch with a timeout.
 *
 * The keys never expire from the cache on their own (jose's `cacheMaxAge` is infinite), so an
 * authorization server outage never refuses a token whose key is cached; they are refreshed in the
 * background every REFRESH_MS instead (a key removed from the set stops working then), and on an
 * unknown `kid`. Discovery that fails at start is retried in the background with backoff; until it
 * succeeds every token is refused with ERR_AUTH_TOKEN_KEYS_UNAVAILABLE. After a failed fetch, no
 * new fetch is attempted for FAILURE_COOLDOWN_MS, so a flood of tokens with unknown `kid`s cannot
 * make the gateway hammer a struggling authorization server or wait on it per request.
 *
 * Both cooldowns are durations on the monotonic clock. jose times its own unknown-`kid` cooldown
 * on the wall clock (from the last load), so a clock stepped back an hour after a load kept it
 * cooling down for that hour: a key the authorization server had just published was refused until
 * the background refresh. jose's cooldown is therefore set to never end, and the unknown-`kid`
 * refetch is made here (getKey) once the monotonic cooldown since the last load has passed.
 */
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors } from 'jose';
import type { CryptoKey, FlattenedJWSInput, JSONWebKeySet, JWSHeaderParameters, RemoteJWKSet } from 'jose';
import type { Logger } from '../../log/types.ts';
import { discoverJwksUri } from './discovery.ts';
import { readCapped } from './read-capped.ts';
import type { FetchLike } from './discovery.ts';

export const FETCH_TIMEOUT_MS = 5000;
export const REFRESH_MS = 10 * 60_000;
export const UNKNOWN_KID_COOLDOWN_MS = 30_000;
export const FAILURE_COOLDOWN_MS = 5000;
export const RETRY_MIN_MS = 1000;
export const RETRY_MAX_MS = 60_000;
/** Largest JWK set read (a set of a few dozen RSA keys is tens of KiB). */
export const MAX_JWKS_BYTES = 1024 * 1024;

/** Thrown by getKey when no JWK set can be used (discovery pending, fetch failed). */
export class KeysUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeysUnavailable';
  }
}

export type JwksStatus = 'ok' | 'stale' | 'unavailable';

export interface KeySource {
  /** The key resolver for jose's jwtVerify. */
  getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey>;
  /** `ok`: keys fetched and the last fetch succeeded; `stale`: cached keys, last fetch failed. */
  status(): JwksStatus;
  /** Resolves true once keys are loaded, or false after `ms`. */
  ready(ms: number): Promise<boolean>;
  close(): void;
}

export interface KeySourceOptions {
  readonly issuer: string;
  readonly jwksUri: string | undefined;
  readonly log: Logger;
  readonly fetch?: FetchLike;
  readonly timeoutMs?: number;
  readonly refreshMs?: number;
  readonly cooldownMs?: number;
  readonly failureCooldownMs?: number;
  /**
   * Monotonic ms, for the failure cooldown: a duration. On the wall clock, one stepped back (NTP
   * correcting a fast clock) after a failure would refuse every fetch until it was back there.
   */
  readonly mono?: () => number;
}

export function createKeySource(options: KeySourceOptions): KeySource {
  const { issuer, log } = options;
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  const failureCooldown = options.failureCooldownMs ?? FAILURE_COOLDOWN_MS;
  const now = options.mono ?? (() => performance.now());
  let jwks: RemoteJWKSet | undefined;
  let lastOk: boolean | undefined;
  let failedAt = -Infinity;
  /** Monotonic ms of the last fetch that loaded a JWK set (the unknown-`kid` cooldown runs from it). */
  let loadedAt = -Infinity;
  const unknownKidCooldown = options.cooldownMs ?? UNKNOWN_KID_COOLDOWN_MS;
  let discoveryProblem = 'issuer discovery has not finished';
  let closed = false;
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();

  const later = (fn: () => void, ms: number, repeat = false) => {
    const timer = (repeat ? setInterval : setTimeout)(() => {
      if (!repeat) timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    timers.add(timer);
  };

  /**
   * Every JWK set fetch goes through here: its outcome is the status, failures are logged. A fetch
   * succeeds only once its whole body has arrived (under the same timeout, which jose's signal
   * carries) and is a JWK set: a 200 with a maintenance page, or a body that stalls, is a failed
   * fetch like a refused connection, so it starts the failure cooldown. Otherwise jose, whose own
   * cooldown moves only when a set loads, would fetch again for every token with an unknown `kid`.
   */
  const tracked = async (url: string, init: RequestInit): Promise<Response> => {
    if (now() - failedAt < failureCooldown) throw new KeysUnavailable('JWK set fetch failed recently');
    let text: string;
    let response: Response;
    try {
      response = await doFetch(url, init);
      if (response.status !== 200) {
        fail(`status ${response.status}`);
        void response.body?.cancel().catch(() => {});
        return response;
      }
      text = await readCapped(response, MAX_JWKS_BYTES);
    } catch (err) {
      const why = (err as Error).name === 'TimeoutError' ? 'timed out' : (err as Error).message;
      fail(why);
      // Said as what it is: fetch's own error (a TypeError) or readCapped's (a plain Error) says
      // nothing of whose fault it was, and verify.ts must not blame the token, or a key, for it.
      throw new KeysUnavailable(`JWK set fetch failed: ${why}`);
    }
    if (!isJwkSet(text)) {
      fail('the answer is not a JWK set');
      throw new KeysUnavailable('the JWK set answer is not a JWK set');
    }
    lastOk = true;
    loadedAt = now();
    return new Response(text, { status: 200, headers: response.headers });
  };

  function fail(why: string): void {
    lastOk = false;
    failedAt = now();
    log.warn(
      { issuer, reason: why, cached_keys: jwks?.jwks() !== undefined },
      'JWK set fetch failed: tokens signed by cached keys still validate, others are refused',
    );
  }

  function useJwks(uri: string): void {
    jwks = createRemoteJWKSet(new URL(uri), {
      timeoutDuration: timeoutMs,
      // Never over on jose's wall clock: getKey refetches on an unknown `kid` by the monotonic one.
      cooldownDuration: Infinity,
      cacheMaxAge: Infinity,
      [customFetch]: tracked,
    });
    const refresh = () =>
      void jwks?.reload().then(
        () => {
          for (const wake of waiters) wake();
        },
        () => {},
      );
    refresh();
    later(refresh, options.refreshMs ?? REFRESH_MS, true);
  }

  async function discover(attempt: number): Promise<void> {
    if (closed) return;
    try {
      const uri = await discoverJwksUri(issuer, { fetch: doFetch, timeoutMs });
      if (closed) return;
      log.info({ issuer, jwks_uri: uri }, 'authorization server discovered');
      useJwks(uri);
    } catch (err) {
      discoveryProblem = (err as Error).message;
      const wait = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt);
      log.warn(
        { issuer, retry_ms: wait, reason: discoveryProblem },
        'authorization server discovery failed: every token is refused until it succeeds',
      );
      later(() => void discover(attempt + 1), wait);
    }
  }

  if (options.jwksUri !== undefined) useJwks(options.jwksUri);
  else void discover(0);

  return {
    async getKey(header, token) {
      const set = jwks;
      if (set === undefined) throw new KeysUnavailable(discoveryProblem);
      try {
        return await set(header, token);
      } catch (err) {
        // An unknown `kid` (key rotation): the set is fetched again, at most once per cooldown.
        if (!(err instanceof errors.JWKSNoMatchingKey) || now() - loadedAt < unknownKidCooldown) throw err;
        await set.reload();
        return set(header, token);
      }
    },
    status() {
      if (jwks === undefined || jwks.jwks() === undefined) return 'unavailable';
      return lastOk === false ? 'stale' : 'ok';
    },
    ready(ms) {
      if (lastOk === true) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (value: boolean) => {
          waiters.delete(wake);
          clearTimeout(timer);
          resolve(value);
        };
        const wake = () => done(true);
        const timer = setTimeout(() => done(false), ms);
        timer.unref();
        waiters.add(wake);
      });
    },
    close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}

/**
 * What jose will take as a JWK set: JSON that jose's createLocalJWKSet, which jose calls on the
 * answer, accepts (an object whose `keys` is an array of objects, copied with structuredClone). The
 * shape alone is not enough: structuredClone refuses a set with a member nested too deep (`[[[…]]]`,
 * 20 KiB), and a set jose then refused would be a success here, starting no failure cooldown, while
 * jose, whose own cooldown moves only when a set loads, would fetch again for every unknown `kid`.
 */
function isJwkSet(text: string): boolean {
  try {
    createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Redis store: buckets shared by every replica. One decision is one round trip: a Lua script
 * (EVALSHA, falling back to EVAL after a Redis restart empties its script cache; ioredis's
 * defineCommand does this) that refills, checks and takes on all the request's buckets at once.
 *
 * A decision never hangs and never throws: when Redis cannot be reached, errs, or does not answer
 * within `timeoutMs`, `onStoreError` decides and the decision carries `fallback` and `reason`.
 * Commands are never queued while offline; the client reconnects by itself in the background.
 */
import type { Logger } from '../log/types.ts';
import { loadIoredis } from './ioredis.ts';
import { TAKE_SCRIPT } from './redis-script.ts';
import type {
  BucketSpec,
  Costs,
  Decision,
  RateLimitStore,
  StoreErrorMode,
  StoreErrorReason,
} from './store.ts';
import { costAt, fallbackDecision, summarize } from './store.ts';

export const REDIS_DEFAULTS = Object.freeze({ reconnectMaxDelayMs: 2000, logEveryMs: 10_000 });

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port/db` or `rediss://` (never logged). */
  readonly url: string;
  /** Prefix of every key this store writes. */
  readonly prefix: string;
  /** Time allowed for one decision before `onStoreError` applies. */
  readonly timeoutMs: number;
  readonly onStoreError: StoreErrorMode;
  readonly logger?: Pick<Logger, 'info' | 'warn'>;
  /** Longest pause between reconnection attempts. */
  readonly reconnectMaxDelayMs?: number;
}

export interface RedisStore extends RateLimitStore {
  consume(buckets: readonly BucketSpec[], costs: Costs, retry?: Costs): Promise<Decision>;
  /** Whether the connection is up (decisions come from Redis, not the fallback). */
  readonly connected: boolean;
  /** Resolves true once connected, or false after `waitMs`. */
  ready(waitMs: number): Promise<boolean>;
}

interface Scripted {
  mcpgateTake(...args: (string | number)[]): Promise<unknown>;
}

const TIMEOUT = Symbol('timeout');
/** The longest delay a Node timer runs as asked. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The store, its client connecting in the background (ioredis is loaded on the first call). */
export async function openRedisStore(options: RedisStoreOptions): Promise<RedisStore> {
  const { url, prefix, timeoutMs, onStoreError, logger } = options;
  if (typeof url !== 'string' || url === '') throw new TypeError('openRedisStore: url is required');
  if (!(timeoutMs > 0)) throw new TypeError('openRedisStore: timeoutMs must be positive');
  if (onStoreError !== 'deny' && onStoreError !== 'allow')
    throw new TypeError('openRedisStore: onStoreError');
  const maxDelay = options.reconnectMaxDelayMs ?? REDIS_DEFAULTS.reconnectMaxDelayMs;
  // Node runs a timer longer than 2^31 - 1 ms after 1 ms: a long `timeout` (the config allows up to
  // about 596 h) must not turn these into 1 ms, which would cut every connection and decision.
  const patience = Math.min(MAX_TIMER_MS, Math.max(1000, timeoutMs * 4));
  const Redis = await loadIoredis();

  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // A backstop only: the decision's own deadline is the race in consume(), which reads a reply
    // that arrived while the event loop was busy (this timer would have failed the command first).
    commandTimeout: patience,
    connectTimeout: patience,
    disconnectTimeout: Math.max(100, timeoutMs),
    // A Redis that stops answering (hung, frozen, a partition that drops packets) keeps its socket
    // open for as long as TCP lets it: each decision would still be written to it after its own
    // timeout, held in memory without bound, and run when Redis woke, charging the buckets for
    // requests already refused. Silence while a decision waits ends the connection instead: the
    // waiting decisions fail, and the next ones fail at once (not ready) until it is back.
    socketTimeout: patience,
    retryStrategy: (times) => Math.min(times * 100, maxDelay),
    protocol: 2,
    scripts: { mcpgateTake: { lua: TAKE_SCRIPT } },
  });
  const scripted = client as unknown as Scripted;

  // Log changes of state, not every failed decision (a down Redis would flood the log).
  let up = false;
  let closed = false;
  let lastFailureLog = -Infinity;
  client.on('ready', () => {
    if (!up) logger?.info({ store: 'redis' }, 'rate limit store connected');
    up = true;
  });
  client.on('close', () => {
    if (up && !closed)
      logger?.warn({ store: 'redis', on_store_error: onStoreError }, 'rate limit store unreachable');
    up = false;
  });
  client.on('error', (err: Error) => {
    if (performance.now() - lastFailureLog > REDIS_DEFAULTS.logEveryMs) {
      lastFailureLog = performance.now();
      logger?.warn(
        { store: 'redis', err: describe(err), on_store_error: onStoreError },
        'rate limit store error',
      );
    }
  });

  // Redis's clock minus performance.now(), measured on a quick reply (within a quarter of the timeout,
  // so off by at most an eighth of it): what turns "the gateway stops waiting" into the script's
  // deadline. Until one is measured (or after a clock's jump, until the next), decisions go without.
  let skew: number | undefined;

  const fail = (buckets: readonly BucketSpec[], reason: StoreErrorReason, err?: unknown): Decision => {
    if (err !== undefined && performance.now() - lastFailureLog > REDIS_DEFAULTS.logEveryMs) {
      lastFailureLog = performance.now();
      logger?.warn(
        { store: 'redis', reason, err: describe(err), on_store_error: onStoreError },
        'rate limit store failed',
      );
    }
    return fallbackDecision(buckets, onStoreError, reason);
  };

  return {
    async consume(buckets, costs, retry) {
      const n = buckets.length;
      if (n === 0) throw new TypeError('consume: at least one bucket is required');
      if (closed || client.status !== 'ready') return fail(buckets, 'store_unavailable');
      const args: (string | number)[] = new Array(2 + 4 * n);
      args[0] = n;
      const sent = performance.now();
      args[1 + 4 * n] = skew === undefined ? 0 : sent + skew + timeoutMs;
      for (let i = 0; i < n; i++) {
        const spec = buckets[i] as BucketSpec;
        args[1 + i] = prefix + spec.key;
        args[1 + n + 3 * i] = spec.capacity;
        args[2 + n + 3 * i] = spec.refillPerSecond;
        args[3 + n + 3 * i] = costAt(costs, i);
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        const reply = await Promise.race([
          scripted.mcpgateTake(...args),
          new Promise<typeof TIMEOUT>((resolve) => {
            // After the event loop was held past the deadline (a large parse, a GC pause), timers run
            // before the sockets are read: one round of I/O first, so a reply Redis sent meanwhile
            // decides (its tokens were taken) rather than on_store_error (503, or unmetered).
            timer = setTimeout(() => setImmediate(resolve, TIMEOUT), timeoutMs);
          }),
        ]);
        if (reply === TIMEOUT) return fail(buckets, 'store_timeout', new Error('no answer in time'));
        const parsed = parseReply(reply, n);
        if (parsed === undefined) return fail(buckets, 'store_error', new Error('unexpected script reply'));
        const back = performance.now();
        if (back - sent <= timeoutMs / 4) skew = parsed.now - (sent + back) / 2;
        // Past its deadline by Redis's clock: the gateway had stopped waiting (by the measured skew,
        // give or take an eighth of the timeout); nothing was taken.
        if (parsed.levels === undefined)
          return fail(buckets, 'store_timeout', new Error('past its deadline'));
        return summarize(buckets, costs, parsed.levels, (reply as unknown[])[0] === 1, retry);
      } catch (err) {
        return fail(buckets, classify(err), err);
      } finally {
        clearTimeout(timer);
      }
    },
    get connected() {
      return client.status === 'ready';
    },
    ready(waitMs) {
      if (client.status === 'ready') return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (value: boolean) => {
          clearTimeout(timer);
          client.off('ready', onReady);
          resolve(value);
        };
        const onReady = () => done(true);
        const timer = setTimeout(done, waitMs, false);
        client.on('ready', onReady);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      client.disconnect();
    },
  };
}

/** The script's reply: the levels (undefined: past its deadline, nothing taken) and Redis's clock. */
function parseReply(reply: unknown, n: number): { levels: number[] | undefined; now: number } | undefined {
  if (!Array.isArray(reply)) return undefined;
  if (reply.length === 2 && reply[0] === -1) {
    const now = Number(reply[1]);
    return Number.isFinite(now) ? { levels: undefined, now } : undefined;
  }
  if (reply.length !== n + 2 || (reply[0] !== 0 && reply[0] !== 1)) return undefined;
  const levels = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const value = Number(reply[i + 1]);
    if (!Number.isFinite(value)) return undefined;
    levels[i] = value;
  }
  const now = Number(reply[n + 1]);
  return Number.isFinite(now) ? { levels, now } : undefined;
}

function classify(err: unknown): StoreErrorReason {
  const message = err instanceof Error ? err.message : '';
  if (/timed out/i.test(message)) return 'store_timeout';
  if (err instanceof Error && err.name === 'ReplyError') return 'store_error';
  return 'store_unavailable';
}

/** What the operator log gets about a Redis error: its name, code and message (no URL, no password). */
function describe(err: unknown): { name: string; code?: string; message: string } {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined
    ? { name: err.name, message: err.message }
    : { name: err.name, code, message: err.message };
}

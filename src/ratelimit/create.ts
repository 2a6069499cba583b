/** Builds the configured store from `rate_limit` (Config['rate_limit'] fits). */
import type { Logger } from '../log/types.ts';
import { createMemoryStore } from './memory.ts';
import { openRedisStore } from './redis.ts';
import type { RateLimitStore, StoreErrorMode } from './store.ts';

export interface StoreSettings {
  readonly backend: 'memory' | 'redis';
  readonly redis?: { readonly url: string; readonly prefix: string; readonly timeout: number } | undefined;
  readonly on_store_error: StoreErrorMode;
}

export interface StoreDeps {
  /** Monotonic milliseconds for the memory store (e.g. `performance.now`). */
  readonly now: () => number;
  readonly logger?: Pick<Logger, 'info' | 'warn'>;
}

/** Async for Redis only: ioredis is loaded when that store is configured (see ioredis.ts). */
export async function createRateLimitStore(
  settings: StoreSettings,
  deps: StoreDeps,
): Promise<RateLimitStore> {
  if (settings.backend === 'memory') return createMemoryStore({ now: deps.now });
  if (settings.redis === undefined) throw new TypeError('rate_limit.redis is required when backend is redis');
  return openRedisStore({
    url: settings.redis.url,
    prefix: settings.redis.prefix,
    timeoutMs: settings.redis.timeout,
    onStoreError: settings.on_store_error,
    ...(deps.logger ? { logger: deps.logger } : {}),
  });
}

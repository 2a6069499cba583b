/** The undici pool to the one upstream: keep-alive connections, a header timeout, no body timeout. */
import { Pool } from 'undici';

export interface UpstreamOptions {
  readonly url: string;
  readonly headersTimeoutMs: number;
  readonly connections: number;
}

export interface Upstream {
  /** Requests (POST, DELETE): at most `connections` keep-alive connections. */
  readonly pool: Pool;
  /**
   * GET streams get their own pool, without a cap: an idle stream holds its connection for as long
   * as it is open, and streams must never use up the connections requests need. (Each key's open
   * streams are capped by `max_streams`.)
   */
  readonly streams: Pool;
  readonly origin: string;
  /** Path (with query) of the upstream MCP endpoint; also the gateway's MCP path. */
  readonly path: string;
  readonly proto: 'http' | 'https';
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export function createUpstream(options: UpstreamOptions): Upstream {
  const url = new URL(options.url);
  const pool = new Pool(url.origin, {
    connections: options.connections,
    headersTimeout: options.headersTimeoutMs,
    // Streams are long-lived; idleness is handled by keepalive comments, not by timing out.
    bodyTimeout: 0,
    keepAliveTimeout: 10_000,
    connect: { timeout: Math.min(options.headersTimeoutMs, 10_000) },
  });
  const streams = new Pool(url.origin, {
    headersTimeout: options.headersTimeoutMs,
    bodyTimeout: 0,
    keepAliveTimeout: 10_000,
    connect: { timeout: Math.min(options.headersTimeoutMs, 10_000) },
  });
  return {
    pool,
    streams,
    origin: url.origin,
    path: url.pathname + url.search,
    proto: url.protocol === 'https:' ? 'https' : 'http',
    close: async () => {
      await Promise.all([pool.close(), streams.close()]);
    },
    destroy: async () => {
      await Promise.all([pool.destroy(), streams.destroy()]);
    },
  };
}

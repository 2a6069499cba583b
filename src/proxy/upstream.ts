/** The undici pool to the one upstream: keep-alive connections, a header timeout, no body timeout. */
import { Pool } from 'undici';

export interface UpstreamOptions {
  readonly url: string;
  readonly headersTimeoutMs: number;
  readonly connections: number;
}

export interface Upstream {
  readonly pool: Pool;
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
  return {
    pool,
    origin: url.origin,
    path: url.pathname + url.search,
    proto: url.protocol === 'https:' ? 'https' : 'http',
    close: () => pool.close(),
    destroy: () => pool.destroy(),
  };
}

/**
 * The gateway configurations the A/B scripts (ab.ts, attribute.ts) compare builds with, and the
 * headers a client sends them: `passthrough` (allow_unauthenticated, audit to /dev/null), `pipeline`
 * (an API key allowed `*`, memory bucket, audit to a file) and `tools-list` (the same key allowed
 * half of the origin's 1,000 tools). The key is minted by the build itself (`keygen`).
 */
import { join } from 'node:path';
import { BASE_HEADERS } from './client.ts';
import { HUGE, keyEntry } from './measure.ts';
import { keygen } from './processes.ts';
import { halfAllowlist } from './tools.ts';

export type ConfigKind = 'passthrough' | 'pipeline' | 'tools-list';

export async function buildConfig(
  kind: string,
  bin: string,
  originUrl: string,
  auditFile: string,
): Promise<{ config: Record<string, unknown>; headers: Record<string, string> }> {
  if (kind === 'passthrough') {
    return {
      config: {
        upstream: { url: originUrl },
        auth: { allow_unauthenticated: true },
        rate_limit: { ...HUGE, max_streams: 100_000 },
        audit: { output: '/dev/null' },
      },
      headers: { ...BASE_HEADERS },
    };
  }
  if (kind !== 'pipeline' && kind !== 'tools-list') throw new Error(`unknown --config ${kind}`);
  const key = await keygen(bin, 'bench');
  return {
    config: {
      upstream: { url: originUrl },
      keys: [keyEntry(key, kind === 'tools-list' ? halfAllowlist(1000) : ['*'])],
      rate_limit: { backend: 'memory' },
      audit: { output: auditFile },
    },
    headers: { ...BASE_HEADERS, authorization: `Bearer ${key.key}` },
  };
}

export const auditFileFor = (dir: string, label: string) => join(dir, `${label}-audit.log`);

/**
 * A gateway config for the review files: keys allowed `echo` (and some resources), each with a
 * large bucket unless told otherwise, `extra` lines inserted after `upstream.url` (more `upstream`
 * settings, or top-level sections).
 */
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';

export interface KeySpec {
  readonly label: string;
  readonly key: string;
  readonly allow?: readonly string[];
  readonly resources?: readonly string[];
  readonly expires?: string;
  readonly capacity?: number;
  readonly maxStreams?: number;
}

export const newKey = (): string => mintKey(randomBytes(32));

export function reviewConfig(
  upstreamUrl: string,
  keys: readonly KeySpec[],
  extra: string,
  options: { readonly secret: string; readonly resources: readonly string[] },
): string {
  const keyText = keys
    .map((k) => {
      const streams = k.maxStreams !== undefined ? `, max_streams: ${k.maxStreams}` : '';
      return `  - label: ${k.label}
    hash: "sha256:${sha256Hex(k.key)}"
    allow: ${JSON.stringify(k.allow ?? ['echo'])}
    resources: ${JSON.stringify(k.resources ?? options.resources)}
${k.expires ? `    expires: "${k.expires}"\n` : ''}    rate_limit: { capacity: ${k.capacity ?? 1000}, refill_per_second: 1000${streams} }
`;
    })
    .join('');
  return `listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
${extra}auth:
  session_secret: "${options.secret}"
keys:
${keyText}`;
}

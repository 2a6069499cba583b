/** Checks that span several fields: duplicate keys, hash formats, dates. Run after the schema. */
import type { Config } from './schema.ts';
import type { Issue } from './spec.ts';
import { parseKeyHash } from '../auth/key-hash.ts';

export function crossChecks(config: Config, now: number, issues: Issue[]): void {
  const labels = new Map<string, number>();
  const hashes = new Map<string, number>();
  config.keys.forEach((key, i) => {
    const at = `keys[${i}]`;
    const firstLabel = labels.get(key.label);
    if (firstLabel !== undefined)
      issues.push({
        path: `${at}.label`,
        message: `duplicate label (also keys[${firstLabel}])`,
        severity: 'error',
      });
    else labels.set(key.label, i);
    const digest = parseKeyHash(key.hash);
    if (digest === undefined) {
      issues.push({
        path: `${at}.hash`,
        message: 'not a sha256 hash (expected sha256:<64 hex> or 64 hex digits)',
        severity: 'error',
      });
    } else {
      const firstHash = hashes.get(digest);
      if (firstHash !== undefined)
        issues.push({
          path: `${at}.hash`,
          message: `duplicate hash (also keys[${firstHash}])`,
          severity: 'error',
        });
      else hashes.set(digest, i);
    }
    if (key.expires !== undefined) {
      const when = parseExpiry(key.expires);
      if (when === undefined)
        issues.push({ path: `${at}.expires`, message: 'not an ISO 8601 date or time', severity: 'error' });
      else if (when <= now)
        issues.push({
          path: `${at}.expires`,
          message: 'is in the past: this key is refused',
          severity: 'warning',
        });
    }
  });
  if (config.rate_limit.backend === 'redis' && config.rate_limit.redis === undefined) {
    issues.push({
      path: 'rate_limit.redis.url',
      message: 'is required when backend is redis',
      severity: 'error',
    });
  }
  if (config.keys.length === 0 && !config.auth.allow_unauthenticated) {
    issues.push({
      path: 'keys',
      message: 'no keys configured: every request will be refused (run `mcpgate keygen`)',
      severity: 'warning',
    });
  }
  if (config.auth.allow_unauthenticated && config.keys.length > 0) {
    issues.push({
      path: 'auth.allow_unauthenticated',
      message: 'cannot be combined with keys',
      severity: 'error',
    });
  }
}

/** Dates without a time (2027-01-31) expire at the end of that day, UTC. */
export function parseExpiry(value: string): number | undefined {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const start = Date.parse(`${value}T00:00:00Z`);
    return Number.isNaN(start) ? undefined : start + 86_400_000;
  }
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value)) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Parses durations such as `250ms`, `30s`, `5m`, `1h`: always with a unit. A bare number was read
 * as milliseconds, so `shutdown.grace: 30` (or MCPGATE_SHUTDOWN_GRACE=30) meant 30 ms to the
 * gateway and 30 s to whoever wrote it, and validate said ok: it is refused, as `'30'` was.
 */
const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;

export function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = PATTERN.exec(value.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = UNITS[match[2] as string] as number;
  return Math.round(amount * unit);
}

/** Parses sizes such as `4MiB`, `512KiB`, `1000` (bytes). */
const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  mb: 1_000_000,
  kib: 1024,
  mib: 1024 * 1024,
  gib: 1024 * 1024 * 1024,
};
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = SIZE_PATTERN.exec(value.trim());
  if (!match) return undefined;
  const unit = SIZE_UNITS[(match[2] || 'b').toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return bytes > 0 ? bytes : undefined;
}

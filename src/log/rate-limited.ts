/**
 * An operational log line that may repeat fast (every failing request, say) written at most once
 * per interval per key: the first occurrence at once, then one line per interval carrying how many
 * occurrences it stands for (`repeated`). Nothing is lost from the count, and a flood cannot flood
 * the log. The clock is passed in (monotonic ms).
 */
import type { Logger } from './types.ts';

/** How often one kind of line is written at most. */
export const LOG_EVERY_MS = 60_000;

export type Level = 'warn' | 'error' | 'info';

export interface RateLimitedLog {
  /** Logs `msg` now, or counts it if a line with the same key was written within the interval. */
  (key: string, level: Level, fields: Record<string, unknown>, msg: string): void;
}

export function createRateLimitedLog(
  log: Pick<Logger, Level>,
  options: { readonly now: () => number; readonly intervalMs?: number },
): RateLimitedLog {
  const every = options.intervalMs ?? LOG_EVERY_MS;
  const seen = new Map<string, { at: number; suppressed: number }>();
  return function limited(key, level, fields, msg) {
    const now = options.now();
    const entry = seen.get(key);
    if (entry !== undefined && now - entry.at < every) {
      entry.suppressed++;
      return;
    }
    const repeated = entry?.suppressed ?? 0;
    seen.set(key, { at: now, suppressed: 0 });
    log[level](repeated > 0 ? { ...fields, repeated, interval_ms: every } : fields, msg);
  };
}

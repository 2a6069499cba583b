/**
 * The operational log (start-up summary, config reloads, upstream trouble): pino on stderr,
 * separate from the audit stream. JSON lines by default; readable text when stderr is a terminal
 * (the caller decides: `pretty: process.stderr.isTTY`). Written synchronously: these lines are few,
 * and the last ones before a crash are the ones that matter.
 *
 * Redaction is a safety net: code should never log a header, but if a headers object slips into a
 * log call, Authorization, Cookie and X-API-Key values come out as `[redacted]`.
 */
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';
import { formatPretty } from './pretty.ts';

import { isLogLevel } from './levels.ts';
import type { LogLevel } from './levels.ts';

export { isLogLevel, LOG_LEVELS } from './levels.ts';
export type { LogLevel } from './levels.ts';

const SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];

/** Paths redacted in every operational log line: at the top, one and two levels down. */
export const REDACT_PATHS: readonly string[] = Object.freeze(
  SECRET_HEADERS.flatMap((name) => {
    const key = /^[a-z]+$/.test(name) ? `.${name}` : `["${name}"]`;
    return [key.startsWith('.') ? name : key, `*${key}`, `*.*${key}`];
  }),
);

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Human-readable lines instead of JSON (for a terminal). */
  readonly pretty?: boolean;
  /** ANSI colours in pretty mode (default: same as `pretty`). */
  readonly color?: boolean;
  /** Where lines go (default: fd 2, synchronous). */
  readonly destination?: { write(line: string): unknown };
}

export function createLogger(options: LoggerOptions): PinoLogger {
  if (!isLogLevel(options.level)) throw new TypeError(`unknown log level: ${String(options.level)}`);
  const out = options.destination ?? pino.destination({ dest: 2, sync: true });
  const color = options.color ?? options.pretty === true;
  const destination = options.pretty
    ? { write: (line: string) => out.write(formatPretty(line, color)) }
    : out;
  return pino(
    {
      level: options.level,
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    destination,
  );
}

/**
 * A tiny in-process formatter for operational logs on a terminal (no pino-pretty, no transport):
 *
 *   12:04:05.123 INFO  mcpgate listening on http://127.0.0.1:8080/mcp version=0.1.0 keys=2
 *
 * It takes pino's JSON line (with `level` as a label and an ISO `time`) and returns one or more
 * text lines. Control characters are escaped so a logged value cannot drive the terminal.
 */
// Controls, separators, format characters and what prints as nothing are escaped (unseen.ts): one
// entry must not look like two, nor drive the terminal, nor hide or reorder what an upstream named.
import { escapeUnseen } from './unseen.ts';

const LEVEL_COLORS: Readonly<Record<string, string>> = {
  trace: '\x1b[90m',
  debug: '\x1b[36m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
  fatal: '\x1b[35;1m',
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

const BARE = /^[\x21-\x7e]+$/;

function formatValue(value: unknown): string {
  if (typeof value === 'string') {
    return BARE.test(value) && !value.includes('"') ? value : escapeUnseen(JSON.stringify(value));
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return escapeUnseen(JSON.stringify(value) ?? 'undefined');
}

interface SerializedError {
  type?: unknown;
  message?: unknown;
  stack?: unknown;
}

export function formatPretty(line: string, color: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return escapeUnseen(line.trimEnd()) + '\n';
  }
  if (entry === null || typeof entry !== 'object') return escapeUnseen(line.trimEnd()) + '\n';
  const { level, time, msg, err, ...rest } = entry;
  const label = typeof level === 'string' ? level : String(level ?? '');
  const clock = typeof time === 'string' && time.length >= 23 ? time.slice(11, 23) : String(time ?? '');
  const tag = label.toUpperCase().padEnd(5);
  let out = color ? `${DIM}${clock}${RESET} ${LEVEL_COLORS[label] ?? ''}${tag}${RESET}` : `${clock} ${tag}`;
  if (typeof msg === 'string' && msg !== '') out += ' ' + escapeUnseen(msg);
  for (const key in rest) out += ` ${escapeUnseen(key)}=${formatValue(rest[key])}`;
  let stack = '';
  if (err !== undefined && err !== null) {
    const e = err as SerializedError;
    if (typeof e === 'object' && typeof e.message === 'string') {
      out += ` err=${formatValue((typeof e.type === 'string' ? e.type + ': ' : '') + e.message)}`;
      if (typeof e.stack === 'string') {
        const lines = e.stack.split('\n').slice(1);
        for (const l of lines) stack += '\n    ' + escapeUnseen(l.trim());
      }
    } else {
      out += ` err=${formatValue(err)}`;
    }
  }
  return out + stack + '\n';
}

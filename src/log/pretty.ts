/**
 * A tiny in-process formatter for operational logs on a terminal (no pino-pretty, no transport):
 *
 *   12:04:05.123 INFO  mcpgate listening on http://127.0.0.1:8080/mcp version=0.1.0 keys=2
 *
 * It takes pino's JSON line (with `level` as a label and an ISO `time`) and returns one or more
 * text lines. Control characters are escaped so a logged value cannot drive the terminal.
 */

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

// C0 and C1 controls and DEL. Newlines too: one entry must not look like two. And what a terminal or
// a reader acts on though it is no control: line and paragraph separators, bidirectional and
// invisible formatting characters. A pin warning quotes the upstream's tool names (pinning's threat
// is a compromised upstream): U+202E turned the rest of its line around. `mcpgate pin` escapes the
// same set (pin-command.ts).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;
const BARE = /^[\x21-\x7e]+$/;

function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') {
    return BARE.test(value) && !value.includes('"') ? value : escapeControls(JSON.stringify(value));
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return escapeControls(JSON.stringify(value) ?? 'undefined');
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
    return escapeControls(line.trimEnd()) + '\n';
  }
  if (entry === null || typeof entry !== 'object') return escapeControls(line.trimEnd()) + '\n';
  const { level, time, msg, err, ...rest } = entry;
  const label = typeof level === 'string' ? level : String(level ?? '');
  const clock = typeof time === 'string' && time.length >= 23 ? time.slice(11, 23) : String(time ?? '');
  const tag = label.toUpperCase().padEnd(5);
  let out = color ? `${DIM}${clock}${RESET} ${LEVEL_COLORS[label] ?? ''}${tag}${RESET}` : `${clock} ${tag}`;
  if (typeof msg === 'string' && msg !== '') out += ' ' + escapeControls(msg);
  for (const key in rest) out += ` ${escapeControls(key)}=${formatValue(rest[key])}`;
  let stack = '';
  if (err !== undefined && err !== null) {
    const e = err as SerializedError;
    if (typeof e === 'object' && typeof e.message === 'string') {
      out += ` err=${formatValue((typeof e.type === 'string' ? e.type + ': ' : '') + e.message)}`;
      if (typeof e.stack === 'string') {
        const lines = e.stack.split('\n').slice(1);
        for (const l of lines) stack += '\n    ' + escapeControls(l.trim());
      }
    } else {
      out += ` err=${formatValue(err)}`;
    }
  }
  return out + stack + '\n';
}

/**
 * The audit log as the gateway uses it: built once from the `audit` config section, then one
 * `record(ctx, now, mono)` per request when its response has closed. Start-up calls `ready()` (a
 * file that cannot be opened stops the start), SIGHUP calls `reopen()`, shutdown `close()`.
 */
import type { RequestContext } from '../pipeline/context.ts';
import type { ArgumentLimits } from './arguments.ts';
import { DEFAULT_ARGUMENT_LIMITS } from './arguments.ts';
import { auditRecordOptions } from './record.ts';
import { AuditLineSource } from './line.ts';
import { createAuditWriter } from './writer.ts';
import type { AuditWriter } from './writer.ts';

export interface AuditConfig {
  readonly output: string;
  readonly log_arguments: boolean;
  readonly redact: readonly string[];
}

export interface AuditLog extends Omit<AuditWriter, 'write' | 'append'> {
  /** Builds the request's record and writes it as one line. */
  record(ctx: RequestContext, now: number, mono: number): void;
}

export interface AuditLogOptions {
  readonly onError?: (err: Error) => void;
  readonly onRefusing?: (refusing: boolean) => void;
  readonly limits?: ArgumentLimits;
  /** For tests: a writer other than the configured output. */
  readonly writer?: AuditWriter;
}

export function createAuditLog(config: AuditConfig, options: AuditLogOptions = {}): AuditLog {
  const recordOptions = auditRecordOptions(config, options.limits ?? DEFAULT_ARGUMENT_LIMITS);
  const writer =
    options.writer ??
    createAuditWriter({ output: config.output, onError: options.onError, onRefusing: options.onRefusing });
  // One source for every line: the line is written in place (line.ts), no record object per request.
  const line = new AuditLineSource(recordOptions);
  return {
    file: writer.file,
    record(ctx, now, mono) {
      line.ctx = ctx;
      line.now = now;
      line.mono = mono;
      try {
        writer.append(line);
      } finally {
        line.ctx = undefined;
      }
    },
    accepting: () => writer.accepting(),
    lost: () => writer.lost(),
    ready: () => writer.ready(),
    flush: () => writer.flush(),
    flushSync: () => writer.flushSync(),
    reopen: () => writer.reopen(),
    close: () => writer.close(),
  };
}

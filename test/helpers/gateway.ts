/**
 * Starts a real gateway (the same runtime `mcpgate serve` runs) in this process on a free loopback
 * port, from a YAML config. The audit log's lines are kept in memory (`auditLines`), already
 * serialised and parsed back, so tests assert on exactly what would be written.
 */
import { parseConfigText } from '../../src/config/load.ts';
import { startRuntime } from '../../src/server/runtime.ts';
import type { Runtime } from '../../src/server/runtime.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import type { RequestContext } from '../../src/pipeline/context.ts';
import type { AuditWriter } from '../../src/audit/writer.ts';
import { LineBuffer } from '../../src/audit/line-buffer.ts';
import { createLogger } from '../../src/log/logger.ts';
import type { Logger } from '../../src/log/types.ts';
import type { OAuthTuning } from '../../src/auth/oauth/authenticator.ts';
import type { Clock } from '../../src/pipeline/ports.ts';

export interface TestGateway extends Gateway {
  readonly runtime: Runtime;
  /** Every finished request's context, in the order they finished. */
  readonly finished: RequestContext[];
  /** Every audit line, parsed from the JSON text the writer received. */
  readonly auditLines: Record<string, unknown>[];
  readonly upstreamErrors: string[];
}

export interface TestGatewayOptions {
  /** Listen address (default 127.0.0.1:0). */
  readonly listen?: string;
  /** The operational logger (default silent). */
  readonly log?: Logger;
  readonly oauthTuning?: OAuthTuning;
  /** What the audit writer's accepting() answers (always true when absent). */
  readonly auditAccepting?: () => boolean;
  /** The gateway's clocks (default Date.now and performance.now). */
  readonly clock?: Clock;
}

export async function startTestGateway(
  yaml: string,
  env: Record<string, string> = {},
  options: TestGatewayOptions = {},
): Promise<TestGateway> {
  const { config, issues } = parseConfigText(yaml, env, Date.now());
  if (!config)
    throw new Error(`bad test config:\n${issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  const auditLines: Record<string, unknown>[] = [];
  // The lines as the real writer encodes them (line.ts writes them in place): one line each, parsed.
  const encoded = new LineBuffer();
  const writer: AuditWriter = {
    file: undefined,
    write: (record) => void auditLines.push(JSON.parse(JSON.stringify(record)) as Record<string, unknown>),
    append(source) {
      encoded.append(source);
      const text = encoded.take()?.toString('utf8') ?? '';
      if (text.indexOf('\n') !== text.length - 1) throw new Error(`not one audit line: ${text}`);
      auditLines.push(JSON.parse(text) as Record<string, unknown>);
    },
    accepting: () => options.auditAccepting?.() ?? true,
    lost: () => false,
    ready: async () => {},
    flush: async () => {},
    flushSync() {},
    reopen() {},
    close: async () => {},
  } as AuditWriter;
  const finished: RequestContext[] = [];
  const upstreamErrors: string[] = [];
  const runtime = await startRuntime(config, {
    clock: options.clock ?? { now: Date.now, mono: () => performance.now() },
    log: options.log ?? createLogger({ level: 'silent' }),
    env,
    listen: options.listen ?? '127.0.0.1:0',
    ...(options.oauthTuning ? { oauthTuning: options.oauthTuning } : {}),
    auditWriter: writer,
    tap: {
      finish: (ctx) => void finished.push(ctx),
      upstreamError: (kind) => void upstreamErrors.push(kind),
    },
  });
  const gateway = runtime.gateway;
  return Object.assign(Object.create(gateway) as Gateway, gateway, {
    runtime,
    finished,
    auditLines,
    upstreamErrors,
    close: (graceMs: number) => runtime.close(graceMs),
  });
}

/**
 * Starts a real gateway in this process on a free loopback port, from a YAML config, and captures
 * what it records about each request.
 */
import { parseConfigText } from '../../src/config/load.ts';
import { startGateway } from '../../src/server/gateway.ts';
import type { Gateway } from '../../src/server/gateway.ts';
import type { RequestContext } from '../../src/pipeline/context.ts';
import type { Observer } from '../../src/pipeline/ports.ts';
import { pino } from 'pino';

export interface TestGateway extends Gateway {
  readonly finished: RequestContext[];
  readonly upstreamErrors: string[];
}

export async function startTestGateway(yaml: string, env: Record<string, string> = {}): Promise<TestGateway> {
  const { config, issues } = parseConfigText(yaml, env, Date.now());
  if (!config) throw new Error(`bad test config:\n${issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  const finished: RequestContext[] = [];
  const upstreamErrors: string[] = [];
  const observer: Observer = {
    finish: (ctx) => void finished.push(ctx),
    upstreamError: (kind) => void upstreamErrors.push(kind),
    streamOpened() {},
    streamClosed() {},
  };
  const gateway = await startGateway(
    config,
    { clock: { now: Date.now, mono: () => performance.now() }, log: pino({ level: 'silent' }), env, observer },
    '127.0.0.1:0',
  );
  return Object.assign(Object.create(gateway) as Gateway, gateway, { finished, upstreamErrors });
}

/**
 * The pipeline's Observer: the audit line and the metrics, both from the same RequestContext, read
 * once when the response has closed. It runs inside a 'close' listener, so it never throws: a
 * failure is reported to `onError` and the request is still counted by the other half.
 */
import type { Clock, Observer } from '../pipeline/ports.ts';
import type { AuditLog } from './audit.ts';
import type { Metrics } from '../metrics/metrics.ts';

export interface ObserverDeps {
  readonly clock: Clock;
  readonly audit: (Pick<AuditLog, 'record' | 'accepting'> & Partial<Pick<AuditLog, 'lost'>>) | undefined;
  readonly metrics: Pick<Metrics, 'observe' | 'upstreamError' | 'streamOpened' | 'streamClosed'> | undefined;
  readonly onError: (err: unknown, where: 'audit' | 'metrics') => void;
}

export function createObserver(deps: ObserverDeps): Observer {
  const { clock, audit, metrics, onError } = deps;
  return {
    finish(ctx) {
      const now = clock.now();
      const mono = clock.mono();
      if (audit !== undefined) {
        try {
          audit.record(ctx, now, mono);
        } catch (err) {
          onError(err, 'audit');
        }
      }
      if (metrics !== undefined) {
        try {
          metrics.observe(ctx, mono);
        } catch (err) {
          onError(err, 'metrics');
        }
      }
    },
    upstreamError(kind) {
      metrics?.upstreamError(kind);
    },
    streamOpened() {
      metrics?.streamOpened();
    },
    streamClosed() {
      metrics?.streamClosed();
    },
    accepting: audit === undefined ? () => true : () => audit.accepting(),
    auditLost: () => audit?.lost?.() === true,
  };
}

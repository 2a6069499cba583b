/** `GET /metrics`: the Prometheus text exposition of the gateway's registry. */
import type { Route } from '../server/routes.ts';
import type { Metrics } from './metrics.ts';

export function metricsRoute(
  metrics: Pick<Metrics, 'render'>,
  onError: (err: unknown) => void = () => {},
): Route {
  return (req, res) => {
    metrics.render().then(
      ({ contentType, body }) => {
        res.statusCode = 200;
        res.setHeader('content-type', contentType);
        res.setHeader('cache-control', 'no-store');
        res.setHeader('content-length', Buffer.byteLength(body));
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        onError(err);
        res.statusCode = 500;
        res.setHeader('content-type', 'text/plain; charset=utf-8');
        res.end('metrics unavailable\n');
      },
    );
  };
}

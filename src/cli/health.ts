/** `mcpgate health`: exits 0 when the gateway's /healthz answers 200 (a container HEALTHCHECK). */
import type { Command } from 'commander';
import type { CliIo } from './io.ts';
import { parseListen } from '../config/schema.ts';

export function registerHealth(program: Command, io: CliIo): void {
  program
    .command('health')
    .description('probe a running gateway (for container health checks)')
    .option('--url <url>', 'URL to probe (default: /healthz on $MCPGATE_LISTEN, else 127.0.0.1:8080)')
    .option('--timeout <ms>', 'time allowed, all told (connecting included)', '2000')
    .action(async (options: { url?: string; timeout: string }) => {
      const url = options.url ?? defaultUrl(io.env.MCPGATE_LISTEN);
      // undici reads 0 as "no timeout": `--timeout 0` waited forever on a gateway that never answered.
      const ms = /^\d{1,9}$/.test(options.timeout) ? Number(options.timeout) : 0;
      if (ms === 0) {
        io.stderr('health: --timeout must be a whole number of milliseconds above 0\n');
        io.exit(1);
        return;
      }
      try {
        const { request } = await import('undici');
        const { statusCode, body } = await request(url, {
          headersTimeout: ms,
          bodyTimeout: ms,
          // Connecting too (undici's own connect timeout is 10 s).
          signal: AbortSignal.timeout(ms),
        });
        await body.dump();
        if (statusCode === 200) {
          io.stdout('ok\n');
          io.exit(0);
          return;
        }
        io.stderr(`unhealthy: HTTP ${statusCode}\n`);
      } catch (err) {
        io.stderr(`unhealthy: ${(err as Error).message}\n`);
      }
      io.exit(1);
    });
}

/** The probe address for a listen address: a wildcard host is probed on loopback. */
function defaultUrl(listen: string | undefined): string {
  const address = listen ? parseListen(listen) : undefined;
  if (!address) return 'http://127.0.0.1:8080/healthz';
  const host =
    address.host === '0.0.0.0' || address.host === '::' || address.host === '' ? '127.0.0.1' : address.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/healthz`;
}

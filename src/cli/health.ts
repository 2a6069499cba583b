/** `mcpgate health`: exits 0 when the gateway's /healthz answers 200 (a container HEALTHCHECK). */
import type { Command } from 'commander';
import { request } from 'undici';
import type { CliIo } from './io.ts';

export function registerHealth(program: Command, io: CliIo): void {
  program
    .command('health')
    .description('probe a running gateway (for container health checks)')
    .option('--url <url>', 'URL to probe', 'http://127.0.0.1:8080/healthz')
    .option('--timeout <ms>', 'time allowed', '2000')
    .action(async (options: { url: string; timeout: string }) => {
      try {
        const ms = Number(options.timeout);
        const { statusCode, body } = await request(options.url, { headersTimeout: ms, bodyTimeout: ms });
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

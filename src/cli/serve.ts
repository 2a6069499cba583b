/** `mcpgate serve`: loads the config, starts the gateway, and shuts down gracefully on signals. */
import type { Command } from 'commander';
import { pino } from 'pino';
import type { CliIo } from './io.ts';
import { configPath } from './config-path.ts';
import { loadConfig, formatIssue } from '../config/load.ts';
import { startGateway } from '../server/gateway.ts';
import type { Observer } from '../pipeline/ports.ts';
import { VERSION } from '../version.ts';

interface ServeOptions {
  config?: string;
  listen?: string;
  logLevel: string;
}

export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the gateway in front of the configured upstream')
    .option('-c, --config <path>', 'config file (default: $MCPGATE_CONFIG or ./mcpgate.yaml)')
    .option('-l, --listen <host:port>', 'override the listen address (also $MCPGATE_LISTEN)')
    .option('--log-level <level>', 'operational log level: trace, debug, info, warn, error, fatal, silent', 'info')
    .action(async (options: ServeOptions) => {
      const path = configPath(options.config, io.env);
      const { config, issues } = await loadConfig(path, io.env, io.now());
      for (const issue of issues) io.stderr(formatIssue(issue) + '\n');
      if (!config) {
        io.exit(1);
        return;
      }
      const log = pino({ level: options.logLevel, base: null }, pino.destination({ fd: 2, sync: true }));
      const observer: Observer = { finish() {}, upstreamError() {}, streamOpened() {}, streamClosed() {} };
      const clock = { now: Date.now, mono: () => performance.now() };
      const gateway = await startGateway(config, { clock, log, env: io.env, observer }, options.listen ?? (io.env.MCPGATE_LISTEN || undefined));
      log.info({ version: VERSION, listen: gateway.url, upstream: new URL(config.upstream.url).origin, keys: config.keys.length }, `mcpgate listening on ${gateway.mcpUrl}`);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal, inflight: gateway.handler.inflight.size }, 'shutting down');
        void gateway.close(config.shutdown.grace).then(({ forced }) => {
          log.info({ forced }, 'stopped');
          io.exit(0);
          process.exit(0);
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}

/** `mcpgate serve`: loads the config, starts the gateway, and shuts down gracefully on signals. */
import { rmSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CliIo } from './io.ts';
import { loadFromSource } from './config-path.ts';
import { isLogLevel, LOG_LEVELS } from '../log/levels.ts';
import { VERSION } from '../version.ts';
import { parseListen } from '../config/schema.ts';

interface ServeOptions {
  config?: string;
  listen?: string;
  logLevel: string;
  pidFile?: string;
}

export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the gateway in front of the configured upstream')
    .option(
      '-c, --config <path>',
      'config file (default: $MCPGATE_CONFIG, else ./mcpgate.yaml, else the MCPGATE_* environment alone)',
    )
    .option('-l, --listen <host:port>', 'override the listen address (also $MCPGATE_LISTEN)')
    .option('--pid-file <path>', 'write the process id here (for `mcpgate reload --pid-file`)')
    .option('--log-level <level>', `operational log level: ${LOG_LEVELS.join(', ')}`, 'info')
    .action(async (options: ServeOptions) => {
      if (!isLogLevel(options.logLevel)) {
        io.stderr(`--log-level must be one of: ${LOG_LEVELS.join(', ')}\n`);
        io.exit(1);
        return;
      }
      const listenOverride = options.listen ?? (io.env.MCPGATE_LISTEN || undefined);
      if (listenOverride !== undefined && !parseListen(listenOverride)) {
        const source = options.listen !== undefined ? '--listen' : 'MCPGATE_LISTEN';
        io.stderr(
          `${source} expects HOST:PORT (e.g. 127.0.0.1:8080 or 0.0.0.0:8080), got ${JSON.stringify(listenOverride)}\n`,
        );
        io.exit(1);
        return;
      }
      // Loaded here, not at start, so `mcpgate --version` and `keygen` start fast.
      const [{ startRuntime }, { createLogger }, { onHangup }, { gcSource }] = await Promise.all([
        import('../server/runtime.ts'),
        import('../log/logger.ts'),
        import('./reload-on-hup.ts'),
        import('../server/gc-access.ts'),
      ]);
      const log = createLogger({ level: options.logLevel, pretty: process.stderr.isTTY === true });
      const { file, path, config, issues, formatIssue, load } = await loadFromSource(options.config, io);
      for (const issue of issues) {
        if (issue.severity === 'warning') log.warn({ path: issue.path }, issue.message);
        else io.stderr(formatIssue(issue) + '\n');
      }
      if (!config) {
        io.stderr(
          `${path}: not started, fix the problems above (mcpgate validate${file === undefined ? '' : ` --config ${file}`})\n`,
        );
        io.exit(1);
        return;
      }
      const clock = { now: Date.now, mono: () => performance.now() };
      let runtime;
      try {
        runtime = await startRuntime(config, {
          clock,
          log,
          env: io.env,
          listen: listenOverride,
        });
      } catch (err) {
        io.stderr(`mcpgate: cannot start: ${startError(err)}\n`);
        io.exit(1);
        return;
      }
      const { gateway } = runtime;
      if (options.pidFile !== undefined) {
        try {
          writeFileSync(options.pidFile, `${process.pid}\n`);
        } catch (err) {
          log.warn(
            { file: options.pidFile, err: { message: (err as Error).message } },
            'cannot write the pid file',
          );
        }
      }
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          // Still listening after the first signal: with no listener left, a repeated SIGTERM or
          // SIGINT (Ctrl-C twice) killed the process on the spot, and the requests in flight and
          // the audit lines not yet written were lost. The shutdown is bounded by shutdown.grace;
          // SIGKILL remains for whoever cannot wait.
          log.warn({ signal, inflight: gateway.handler.inflight.size }, 'already shutting down');
          return;
        }
        stopping = true;
        log.info(
          { signal, inflight: gateway.handler.inflight.size, grace_ms: config.shutdown.grace },
          'shutting down',
        );
        void runtime.close(config.shutdown.grace).then(
          ({ forced }) => {
            if (options.pidFile !== undefined) rmSync(options.pidFile, { force: true });
            log.info({ forced }, 'stopped');
            process.exit(0);
          },
          (err: Error) => {
            log.error({ err: { message: err.message } }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      // Every handler is in place before the gateway says it listens: a SIGHUP (logrotate, `mcpgate
      // reload`) that came right after that line, while reload-on-hup.ts was still being imported,
      // met SIGHUP's default action and killed the gateway.
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      const hangup = onHangup(runtime, { path, log, load });
      process.on('SIGHUP', () => void hangup());
      log.info(
        {
          version: VERSION,
          listen: gateway.url,
          upstream: new URL(config.upstream.url).origin,
          keys: config.keys.length,
          rate_limit: config.rate_limit.backend,
          audit:
            config.audit.output === 'stdout' || config.audit.output === 'stderr'
              ? config.audit.output
              : 'file',
          metrics: runtime.metricsUrl,
          // "context" costs CPU after pauses in traffic; NODE_OPTIONS=--expose-gc makes it "flag".
          gc: gcSource(),
        },
        `mcpgate listening on ${gateway.mcpUrl}`,
      );
    });
}

/** A listen failure in words an operator can act on. */
function startError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const where = e.address !== undefined && e.port !== undefined ? hostPort(e.address, e.port) : undefined;
  const change = 'choose another with --listen, MCPGATE_LISTEN or `listen:` (`metrics.listen` for metrics)';
  if (e.code === 'EADDRINUSE')
    return `${where ?? 'the address'} is already in use (stop what holds it, or ${change})`;
  if (e.code === 'EACCES')
    return `permission denied to listen on ${where ?? 'the address'} (ports below 1024 need privileges: ${change})`;
  if (e.code === 'EADDRNOTAVAIL')
    return `${where ?? 'the address'} is not an address of this machine (${change})`;
  return e.message;
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * `mcpgate pin`: reads the upstream's tool and prompt definitions as the gateway would reach it,
 * writes `pinning.lockfile`, and prints what was added, changed and removed against the previous
 * lockfile, for the reviewer to check before committing it. `--check` writes nothing and exits 1
 * when the upstream no longer matches the lockfile (for CI).
 */
import type { Command } from 'commander';
import type { CliIo } from './io.ts';
import { configPath } from './config-path.ts';
import { VERSION } from '../version.ts';

interface PinOptions {
  config?: string;
  check?: boolean;
}

export function registerPin(program: Command, io: CliIo): void {
  program
    .command('pin')
    .description("write pinning.lockfile from the upstream's current tool and prompt definitions")
    .option('-c, --config <path>', 'config file (default: $MCPGATE_CONFIG or ./mcpgate.yaml)')
    .option('--check', 'write nothing; exit 1 when the upstream differs from the lockfile')
    .action(async (options: PinOptions) => {
      const path = configPath(options.config, io.env);
      const [{ loadConfig, formatIssue }, { runPin }] = await Promise.all([
        import('../config/load.ts'),
        import('../pinning/pin-command.ts'),
      ]);
      const { config, issues } = await loadConfig(path, io.env, io.now());
      for (const issue of issues) io.stderr(formatIssue(issue) + '\n');
      if (!config) {
        io.stderr(`${path}: fix the problems above first (mcpgate validate --config ${path})\n`);
        io.exit(1);
        return;
      }
      if (config.pinning === undefined) {
        io.stderr(`${path}: set pinning.lockfile to the file \`mcpgate pin\` writes\n`);
        io.exit(1);
        return;
      }
      if (config.upstream.transport === 'sse') {
        io.stderr(
          'mcpgate pin speaks Streamable HTTP only: for an HTTP+SSE upstream, write the lockfile from a list the upstream serves over Streamable HTTP\n',
        );
        io.exit(1);
        return;
      }
      const code = await runPin(
        {
          upstream: {
            url: config.upstream.url,
            headers: config.upstream.headers,
            timeoutMs: config.upstream.timeout,
          },
          lockfile: config.pinning.lockfile,
          check: options.check === true,
          version: VERSION,
        },
        io,
      );
      io.exit(code);
    });
}

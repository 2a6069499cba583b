/** `mcpgate validate`: every problem with its path (exit 1), or a one-line summary (exit 0). */
import type { Command } from 'commander';
import type { CliIo } from './io.ts';
import { loadFromSource } from './config-path.ts';

export function registerValidate(program: Command, io: CliIo): void {
  program
    .command('validate')
    .description('check a config file and report every problem at once')
    .option(
      '-c, --config <path>',
      'config file (default: $MCPGATE_CONFIG, else ./mcpgate.yaml, else the MCPGATE_* environment alone)',
    )
    .action(async (options: { config?: string }) => {
      const { path, config, issues, formatIssue } = await loadFromSource(options.config, io);
      for (const issue of issues) io.stderr(formatIssue(issue) + '\n');
      if (!config) {
        io.stderr(`${path}: ${issues.filter((i) => i.severity === 'error').length} problem(s)\n`);
        io.exit(1);
        return;
      }
      if (config.pinning !== undefined) {
        const [{ createPinning }, { LockfileError }] = await Promise.all([
          import('../pinning/pins.ts'),
          import('../pinning/lockfile.ts'),
        ]);
        try {
          createPinning(config.pinning, { report: () => {} });
        } catch (err) {
          if (!(err instanceof LockfileError)) throw err;
          for (const problem of err.problems)
            io.stderr(`pinning.lockfile ${config.pinning.lockfile}: ${problem}\n`);
          io.stderr(`${path}: ${err.problems.length} problem(s) in the lockfile\n`);
          io.exit(1);
          return;
        }
      }
      const warnings = issues.length;
      io.stdout(
        `${path}: ok (upstream ${new URL(config.upstream.url).origin} over ${config.upstream.transport}, ` +
          `${config.keys.length} key(s), ` +
          `rate limit ${config.rate_limit.backend}${config.auth.oauth ? `, OAuth issuer ${config.auth.oauth.issuer}` : ''}` +
          `${warnings ? `, ${warnings} warning(s)` : ''})
`,
      );
      io.exit(0);
    });
}

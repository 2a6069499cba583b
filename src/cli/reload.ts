/**
 * `mcpgate reload --pid PID | --pid-file PATH`: asks a running `mcpgate serve` to reload its config
 * (sends SIGHUP, as `kill -HUP PID` does). The outcome is in that gateway's operational log:
 * `config reloaded`, or `config not reloaded` with every problem and its path.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CliIo } from './io.ts';

export interface ReloadIo extends CliIo {
  readonly signal?: (pid: number, signal: NodeJS.Signals) => void;
}

export function registerReload(program: Command, io: ReloadIo): void {
  program
    .command('reload')
    .description('make a running gateway re-read its config (sends SIGHUP; the result is in its log)')
    .option('--pid <pid>', 'process id of `mcpgate serve` (1 inside its container)')
    .option('--pid-file <path>', 'file written by `mcpgate serve --pid-file` (default: $MCPGATE_PID_FILE)')
    .action(async (options: { pid?: string; pidFile?: string }) => {
      const file = options.pidFile ?? (io.env.MCPGATE_PID_FILE || undefined);
      let text = options.pid;
      if (text === undefined && file !== undefined) {
        try {
          text = (await readFile(file, 'utf8')).trim();
        } catch {
          io.stderr(`reload: cannot read the pid file ${file} (is mcpgate serve running with --pid-file?)\n`);
          io.exit(1);
          return;
        }
      }
      if (text === undefined) {
        io.stderr('reload: say which gateway: --pid PID, or --pid-file PATH (or set MCPGATE_PID_FILE)\n');
        io.exit(1);
        return;
      }
      const pid = Number(text);
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(pid) || pid < 1) {
        io.stderr(`reload: expected a process id, got ${JSON.stringify(text.slice(0, 20))}\n`);
        io.exit(1);
        return;
      }
      try {
        (io.signal ?? process.kill)(pid, 'SIGHUP');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        io.stderr(
          code === 'ESRCH'
            ? `reload: no process with pid ${pid}\n`
            : code === 'EPERM'
              ? `reload: not allowed to signal pid ${pid} (run as the gateway's user)\n`
              : `reload: ${(err as Error).message}\n`,
        );
        io.exit(1);
        return;
      }
      io.stdout(`sent SIGHUP to ${pid}: the gateway's log says "config reloaded" or what to fix\n`);
      io.exit(0);
    });
}

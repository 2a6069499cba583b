/** The commander program: one file per command; the only place that decides exit codes. */
import { Command } from 'commander';
import type { CliIo } from './io.ts';
import { registerServe } from './serve.ts';
import { registerValidate } from './validate.ts';
import { registerHealth } from './health.ts';
import { registerKeygen } from './keygen.ts';
import { registerHash } from './hash.ts';
import { registerPin } from './pin.ts';
import { registerReload } from './reload.ts';
import { VERSION } from '../version.ts';
import { withoutSecrets } from './output.ts';

export function buildProgram(io: CliIo): Command {
  const program = new Command('mcpgate')
    .description(
      'A lock for self-hosted MCP servers: keys, allowlists, rate limits and an audit line per request.',
    )
    .version(VERSION, '-V, --version')
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      outputError: (text, write) => write(withoutSecrets(text)),
    })
    .showHelpAfterError();
  registerServe(program, io);
  registerValidate(program, io);
  registerKeygen(program, io);
  registerHash(program, io);
  registerPin(program, io);
  registerHealth(program, io);
  registerReload(program, io);
  return program;
}

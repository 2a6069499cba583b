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

/** A command after `parse`: commander keeps the arguments it was given (not in its types). */
type Parsed = Command & { rawArgs?: readonly string[] };

export function buildProgram(io: CliIo): Command {
  const program = new Command('mcpgate')
    .description(
      'A lock for self-hosted MCP servers: keys, allowlists, rate limits and an audit line per request.',
    )
    .version(VERSION, '-V, --version')
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // The command line as parsed (commander's `rawArgs`, untyped): its arguments are hidden whole.
      outputError: (text, write) => write(withoutSecrets(text, (program as Parsed).rawArgs ?? [])),
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

/** A CliIo that records what a command printed and the exit code it chose. */
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import type { CliIo } from '../../../src/cli/io.ts';

export interface FakeIo extends CliIo {
  out: string;
  err: string;
  code: number | undefined;
}

export function fakeIo(
  options: { stdin?: string; random?: (n: number) => Buffer; now?: number } = {},
): FakeIo {
  const io: FakeIo = {
    out: '',
    err: '',
    code: undefined,
    stdout: (text) => void (io.out += text),
    stderr: (text) => void (io.err += text),
    stdin: async () => options.stdin ?? '',
    env: {},
    exit: (code) => void (io.code = code),
    random: options.random ?? ((n) => randomBytes(n)),
    now: () => options.now ?? Date.now(),
  };
  return io;
}

/** Runs one command line on a fresh program; commander's own errors throw instead of exiting. */
export async function run(
  register: (program: Command, io: CliIo) => void,
  argv: string[],
  io: FakeIo = fakeIo(),
): Promise<FakeIo> {
  const program = new Command('mcpgate')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  register(program, io);
  await program.parseAsync(argv, { from: 'user' });
  return io;
}

/** The side effects a command may have, passed in so commands can be tested with a fake. */
import { randomBytes } from 'node:crypto';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stdin: () => Promise<string>;
  env: Readonly<Record<string, string | undefined>>;
  exit: (code: number) => void;
  random: (n: number) => Buffer;
  now: () => number;
}

export function processIo(): CliIo {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    stdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    env: process.env,
    exit: (code) => {
      process.exitCode = code;
    },
    random: (n) => randomBytes(n),
    now: () => Date.now(),
  };
}

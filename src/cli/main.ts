/** The executable's entry: runs the commander program with the real process as its io. */
import { buildProgram } from './program.ts';
import { processIo } from './io.ts';

// No top-level await: the single executable runs this as CommonJS.
const io = processIo();
buildProgram(io)
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    io.stderr(`mcpgate: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });

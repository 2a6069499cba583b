/** The executable's entry: runs the commander program with the real process as its io. */
import { buildProgram } from './program.ts';
import { processIo } from './io.ts';

const io = processIo();
try {
  await buildProgram(io).parseAsync(process.argv);
} catch (err) {
  io.stderr(`mcpgate: ${(err as Error).message}\n`);
  process.exitCode = 1;
}

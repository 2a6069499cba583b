/**
 * A recording MCP upstream in Python (python-upstream.py): every POST the gateway forwards is read
 * with Python's json.loads, and what Python read is reported here (`reads`). Tests that use it skip,
 * with a message, when python3 is absent (`pythonSkip`).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** One message as Python read it: each member as Python's repr() of what json.loads gave. */
export interface PythonRead {
  readonly method?: string;
  readonly id?: string;
  readonly name?: string;
  readonly uri?: string;
  readonly arguments?: string;
  readonly meta?: string;
  readonly keys?: string[];
}

/** One forwarded body: its text (bad bytes as \x escapes) and what json.loads read, or its error. */
export interface PythonReport {
  readonly raw: string;
  readonly read?: PythonRead[];
  readonly error?: string;
}

/** false when python3 runs, else the reason to skip. */
export const pythonSkip: string | false =
  spawnSync('python3', ['--version']).status === 0 ? false : 'python3 is not installed';

export interface PythonUpstream {
  readonly url: string;
  readonly reports: PythonReport[];
  /** The answer to every later request: JSON text where "@ID@" stands for the request's id. */
  answer(template: string | undefined): Promise<void>;
  close(): Promise<void>;
}

export async function startPythonUpstream(): Promise<PythonUpstream> {
  const script = fileURLToPath(new URL('./python-upstream.py', import.meta.url));
  const child: ChildProcess = spawn('python3', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const reports: PythonReport[] = [];
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`python upstream exited ${code}`)));
    lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
  });
  lines.on('line', (line) => void reports.push(JSON.parse(line) as PythonReport));
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/mcp`,
    reports,
    async answer(template) {
      const res = await fetch(`${base}/_answer`, { method: 'POST', body: template ?? '' });
      await res.arrayBuffer();
    },
    async close() {
      child.removeAllListeners('exit');
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill();
      await exited;
    },
  };
}

// `npm run demo`: the demo MCP server, a freshly minted key, and mcpgate in front of it.
// Everything runs on 127.0.0.1 (port 8080, or $PORT); one Ctrl-C stops it all.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoServer } from './server.ts';
import { portProblem, tryIt } from './next-step.ts';

const bin = fileURLToPath(new URL('../../bin/mcpgate.js', import.meta.url));
const port = Number(process.env.PORT ?? 8080);
const problem = await portProblem(process.env.PORT, port);
if (problem !== undefined) {
  console.error(`mcpgate demo cannot start: ${problem}`);
  process.exit(1);
}
const upstream = await startDemoServer();
const minted = JSON.parse(
  execFileSync(process.execPath, [bin, 'keygen', '--label', 'demo', '--allow', 'echo,count', '--json'], {
    encoding: 'utf8',
  }),
) as {
  key: string;
  hash: string;
};
const dir = mkdtempSync(join(tmpdir(), 'mcpgate-demo-'));
const config = join(dir, 'mcpgate.yaml');
writeFileSync(
  config,
  `listen: 127.0.0.1:${port}
upstream:
  url: ${upstream.url}
auth:
  session_secret: "${randomBytes(32).toString('hex')}"
shutdown:
  grace: 1s
keys:
  - label: demo
    hash: "${minted.hash}"
    allow: [echo, count]
    prompts: [greeting]
    resources: ["demo://*"]
    rate_limit:
      capacity: 20
      refill_per_second: 2
`,
);
// Ctrl-C in a terminal signals the whole process group: the gateway stops on its own SIGINT, and
// the demo's SIGTERM to it is harmless (the gateway stops once).
const gateway = spawn(process.execPath, [bin, 'serve', '--config', config], {
  stdio: ['ignore', 'inherit', 'pipe'],
});
const url = `http://127.0.0.1:${port}/mcp`;
let stopping = false;
const finish = (code: number) => {
  rmSync(dir, { recursive: true, force: true });
  void upstream.close().then(() => process.exit(code));
};
let ready = false;
let errText = '';
gateway.stderr!.on('data', (d: Buffer) => {
  process.stderr.write(d);
  if (ready) return;
  errText += d.toString();
  if (!/mcpgate listening on /.test(errText)) return;
  ready = true;
  errText = '';
  console.error(`
mcpgate demo
  upstream (no auth of its own): ${upstream.url}
  gateway:                       ${url}
  config:                        ${config}
  API key (shown once):          ${minted.key}

The key may call "echo" and "count"; "delete_everything" is hidden from it and refused.
${tryIt(url, minted.key)}
Or point an MCP client at ${url} with the header
  Authorization: Bearer ${minted.key}
e.g. npx @modelcontextprotocol/inspector --cli ${url} --transport http \\
       --header 'Authorization: Bearer ${minted.key}' --method tools/list
Audit lines appear below, one per request. Ctrl-C to stop.
`);
});
gateway.once('exit', (code, signal) => {
  if (stopping) return finish(0);
  console.error(
    ready
      ? `mcpgate demo: the gateway stopped (${signal ?? `exit ${code}`})`
      : `mcpgate demo cannot start: the gateway exited (${signal ?? `exit ${code}`}); set PORT to use another port than ${port}`,
  );
  finish(code === 0 || code === null ? 1 : code);
});
const stop = () => {
  if (stopping) return;
  stopping = true;
  console.error('mcpgate demo: stopping');
  if (gateway.exitCode !== null || gateway.signalCode !== null) return finish(0);
  gateway.kill('SIGTERM');
  // The gateway's grace is 1 s; past 3 s it is stuck, and the demo does not wait on it.
  setTimeout(() => gateway.kill('SIGKILL'), 3000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

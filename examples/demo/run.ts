// `npm run demo`: the demo MCP server, a freshly minted key, and mcpgate in front of it.
// Everything runs on 127.0.0.1; Ctrl-C stops it all.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemoServer } from './server.ts';

const bin = fileURLToPath(new URL('../../bin/mcpgate.js', import.meta.url));
const port = Number(process.env.PORT ?? 8080);
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
const gateway = spawn(process.execPath, [bin, 'serve', '--config', config], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
const url = `http://127.0.0.1:${port}/mcp`;
console.error(`
mcpgate demo
  upstream (no auth of its own): ${upstream.url}
  gateway:                       ${url}
  config:                        ${config}
  API key (shown once):          ${minted.key}

The key may call "echo" and "count"; "delete_everything" is hidden from it and refused.
Try it:
  curl -s ${url} -H 'Authorization: Bearer ${minted.key}' \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  or point an MCP client (e.g. npx @modelcontextprotocol/inspector) at ${url} with the header above.
Audit lines appear below, one per request. Ctrl-C to stop.
`);
const stop = () => {
  gateway.kill('SIGTERM');
  gateway.once('exit', () => void upstream.close().then(() => process.exit(0)));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

/** What the demo checks before it starts, and the next step it prints (a curl session that works). */
import { createServer } from 'node:net';

/** Why the demo cannot listen on `port` (naming the port and the PORT variable), or undefined. */
export async function portProblem(raw: string | undefined, port: number): Promise<string | undefined> {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    return `PORT must be a port number from 1 to 65535, got "${raw}"`;
  const probe = createServer();
  const code = await new Promise<string | undefined>((resolve) => {
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(undefined)));
  });
  if (code === undefined) return undefined;
  if (code === 'EADDRINUSE')
    return `127.0.0.1:${port} is already in use; stop what holds it, or pick another port: PORT=8081 npm run demo`;
  if (code === 'EACCES')
    return `permission denied to listen on 127.0.0.1:${port}; pick another port: PORT=8081 npm run demo`;
  return `cannot listen on 127.0.0.1:${port} (${code}); pick another port: PORT=8081 npm run demo`;
}

/**
 * A shell session that initializes, keeps the session id the gateway returns, and calls a tool with
 * it. Lines between the two markers are exactly what the user pastes (the demo test runs them).
 */
export function tryIt(url: string, key: string): string {
  const h = `-H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'`;
  return `Try it (bash; the second and third calls carry the session id the first one returned):
# --- try it ---
SID=$(curl -s -D - -o /dev/null ${url} ${h} -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}' | tr -d '\\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
curl -s ${url} ${h} -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-06-18' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
curl -s ${url} ${h} -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-06-18' -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello through mcpgate"}}}'
# --- end ---`;
}

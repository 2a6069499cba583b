/**
 * How long one keepalive tick holds the event loop with many idle SSE streams due at once, for the
 * keepalive wheel of this checkout and (with `--against DIR`) another's, in one process and one run.
 * A node:http server holds N SSE responses whose clients (a child process, raw sockets) read what
 * arrives; every stream falls due on the same tick, and the longest stretch the loop went without
 * running a turn (an immediate chained to itself) is reported per keepalive period, beside the same
 * measure with no keepalives sent (what the machine's scheduling shows by itself).
 * Not part of the tests.
 *
 *   node bench/keepalive-micro.ts [--streams 2000] [--ticks 6] [--against /work/main]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '2000' },
    ticks: { type: 'string', default: '6' },
    against: { type: 'string' },
  },
});
const N = Number(values.streams);
const TICKS_MEASURED = Number(values.ticks);
const PERIOD_MS = 800;
const KEEPALIVE = Buffer.from(': keepalive\n\n');

interface Wheel {
  add(s: object): void;
  remove(s: object): void;
}
type WheelClass = new (ms: number) => Wheel;
/** No keepalives at all: the stalls this machine shows anyway (the floor of the measure). */
class NoWheel implements Wheel {
  add(): void {}
  remove(): void {}
}
const builds: [string, WheelClass][] = [
  ['no keepalives', NoWheel as unknown as WheelClass],
  ['this', (await import('../src/proxy/keepalive.ts')).KeepaliveWheel as unknown as WheelClass],
];
if (values.against !== undefined) {
  const other = (await import(`${values.against}/src/proxy/keepalive.ts`)) as { KeepaliveWheel: WheelClass };
  builds.push([values.against, other.KeepaliveWheel]);
}

const held: ServerResponse[] = [];
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.flushHeaders();
  held.push(res);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const port = (server.address() as AddressInfo).port;
// The clients: raw sockets in another process, reading whatever comes.
const client = spawn(
  process.execPath,
  [
    '-e',
    `const net = require('node:net'); let n = 0;
     for (let i = 0; i < ${N}; i++) { const s = net.connect(${port}, '127.0.0.1', () => { s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); }); s.on('data', () => {}); s.on('error', () => {}); }`,
  ],
  { stdio: 'ignore' },
);
while (held.length < N) await new Promise((r) => setTimeout(r, 50));

/** Longest gap between two turns of the event loop since it was last reset. */
let longest = 0;
let last = performance.now();
let watching = true;
function watch(): void {
  const now = performance.now();
  if (now - last > longest) longest = now - last;
  last = now;
  if (watching) setImmediate(watch);
}
setImmediate(watch);

const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
console.log(
  `${N} idle SSE streams, all due on the same tick, ${TICKS_MEASURED} ticks per build; load average ${load}`,
);
for (let round = 0; round < 2; round++) {
  for (const [label, Wheel] of builds) {
    const wheel = new Wheel(PERIOD_MS);
    const streams = held.map((res) => ({
      keepaliveSlot: -1,
      keepaliveTick: 0,
      keepalive: () => void res.write(KEEPALIVE),
    }));
    for (const s of streams) wheel.add(s);
    const gaps: number[] = [];
    // Each period: let its ticks pass, keep the longest gap seen.
    for (let t = 0; t < TICKS_MEASURED; t++) {
      longest = 0;
      await new Promise((r) => setTimeout(r, PERIOD_MS));
      gaps.push(longest);
    }
    for (const s of streams) wheel.remove(s);
    gaps.sort((a, b) => a - b);
    console.log(
      `${label.padEnd(14)} longest loop stall per period: median ${gaps[gaps.length >> 1]!.toFixed(1)} ms, max ${gaps.at(-1)!.toFixed(1)} ms`,
    );
  }
}
watching = false;
client.kill();
server.closeAllConnections();
server.close();

/** Loopback helpers for tests: a free port, and waiting for a condition. */
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/**
 * A loopback port nothing listens on, for a server whose address must be known before it starts
 * (a config naming its own URL). It is chosen below the kernel's ephemeral range, where neither a
 * `listen(0)` nor an outgoing connection takes one: a port from that range, free when checked, was
 * seen taken by another test's connection before the gateway bound it ("already in use").
 */
export async function freePort(): Promise<number> {
  const below = ephemeralLow();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (below - LOWEST));
    if (await bindable(port)) return port;
  }
  return bound(0);
}

/** The lowest port freePort picks (under it: well-known and registered services). */
const LOWEST = 10_000;

/** The first port of the ephemeral range (Linux: ip_local_port_range), 32768 where unknown. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function bindable(port: number): Promise<boolean> {
  return bound(port).then(
    () => true,
    () => false,
  );
}

/** Listens on `port` (0: any) on 127.0.0.1, closes, and gives the port. */
async function bound(port: number): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const { port: got } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return got;
}

export async function waitFor<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * node:http with headers as a flat array, so odd spellings and repeated headers go out exactly as
 * written (Host is added first, since Node then sends none of its own).
 */
export function rawHttp(url: string, method: string, headers: string[], body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: ['Host', new URL(url).host, ...headers], agent: false });
    req.on('error', reject);
    req.on('response', (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.end(body);
  });
}

/**
 * Everything the gateway writes on one raw socket until it closes it or `ms` pass: `head` is
 * written at once; `body`, when given, at once too, or (`afterContinue`) only once the gateway has
 * written `100 Continue`, as a client waiting on `Expect: 100-continue` sends it.
 */
export function rawExchange(
  url: string,
  head: string,
  body?: Buffer | string,
  { ms = 1500, afterContinue = false }: { ms?: number; afterContinue?: boolean } = {},
): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(u.port), u.hostname);
    let answer = '';
    let pending = afterContinue ? body : undefined;
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (pending !== undefined && answer.includes('100 Continue\r\n\r\n')) {
        socket.write(pending);
        pending = undefined;
      }
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(answer);
    }, ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.write(head);
    if (body !== undefined && !afterContinue) socket.write(body);
  });
}

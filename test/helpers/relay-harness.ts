/**
 * A Relay exercised between real sockets: an origin behind an undici Pool, and for each relayed
 * response a one-request front server whose handler hands its response to a new Relay.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { Relay } from '../../src/proxy/relay.ts';
import type { ResponseRewrite } from '../../src/proxy/relay.ts';
import type { BufferBudget } from '../../src/proxy/body-buffer.ts';
import { createResponseHead } from '../../src/proxy/response-headers.ts';
import { KeepaliveWheel } from '../../src/proxy/keepalive.ts';

export interface Origin {
  readonly pool: Pool;
  close(): Promise<void>;
}

/** An HTTP origin on a free loopback port, and a Pool to it. */
export async function startOrigin(handler: RequestListener): Promise<Origin> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return {
    pool,
    async close() {
      await pool.close();
      server.close();
    },
  };
}

const keepalive = new KeepaliveWheel(1000);

/**
 * GETs `path` from the origin through a Relay with `rewrite` and `budget`; returns what the client
 * read (undefined when the connection failed) and each onDone error. `onBytes` sees each write;
 * `sweep`, when given, is the relay's (told the size of each upstream chunk).
 */
export async function relayOnce(
  origin: Origin,
  path: string,
  rewrite: ResponseRewrite,
  budget: BufferBudget,
  onBytes: () => void = () => {},
  sweep?: { add(bytes: number): void },
): Promise<{ text: string | undefined; errors: (Error | undefined)[] }> {
  const head = createResponseHead({ pass: [], warn: () => {}, now: () => 0 });
  const errors: (Error | undefined)[] = [];
  const front = createServer((_req, res) => {
    const relay = new Relay(res, { keepalive, head, budget, ...(sweep ? { sweep } : {}) }, rewrite, {
      onStart: () => {},
      onBytes,
      onDone: (error) => {
        errors.push(error);
        if (error !== undefined) res.destroy();
      },
    });
    origin.pool.dispatch({ path, method: 'GET', headers: [] }, relay);
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  let text: string | undefined;
  try {
    text = await (await fetch(`http://127.0.0.1:${(front.address() as AddressInfo).port}/`)).text();
  } catch {
    text = undefined;
  }
  front.close();
  return { text, errors };
}

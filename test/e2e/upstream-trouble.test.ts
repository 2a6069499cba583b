/**
 * Upstream trouble reaches the operational log (not only the audit line): each kind of failure is
 * named once, with the configured upstream and the error code, and repeats are counted instead of
 * written again. A gateway whose upstream does not answer says so at start.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createLogger } from '../../src/log/logger.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, waitFor } from '../helpers/net.ts';

type Line = {
  level: string;
  msg: string;
  kind?: string;
  code?: string;
  upstream?: string;
  repeated?: number;
};

function collector() {
  const lines: Line[] = [];
  const log = createLogger({
    level: 'info',
    destination: { write: (l: string) => void lines.push(JSON.parse(l) as Line) },
  });
  return { lines, log };
}

const BODY = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
const post = (url: string) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: BODY,
  });

const config = (url: string, extra = '') =>
  `listen: 127.0.0.1:0\nupstream:\n  url: ${url}\n  timeout: 300ms\n${extra}auth:\n  allow_unauthenticated: true\n`;

describe('upstream trouble in the operational log', () => {
  /** A TCP server that misbehaves as told: reset, stay silent, or answer with bytes that are not HTTP. */
  let raw: Server;
  let mode: 'reset' | 'silent' | 'garbage' = 'reset';
  const sockets = new Set<Socket>();
  const gateways: TestGateway[] = [];
  before(async () => {
    raw = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.once('data', () => {
        if (mode === 'reset') socket.resetAndDestroy();
        else if (mode === 'garbage') socket.end('NOT HTTP AT ALL\r\n\r\n');
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.close(100)));
    for (const s of sockets) s.destroy();
    raw.close();
  });

  async function gateway(url: string, extra = '') {
    const { lines, log } = collector();
    const gw = await startTestGateway(config(url, extra), {}, { log });
    gateways.push(gw);
    return { gw, lines };
  }
  const upstreamLines = (lines: Line[]) => lines.filter((l) => l.kind !== undefined && l.level === 'warn');

  it('names each kind once, with its code, and counts repeats instead of writing them', async () => {
    const rawUrl = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/mcp`;
    const { gw, lines } = await gateway(rawUrl);
    const cases: [typeof mode, number, string, RegExp][] = [
      ['reset', 502, 'reset', /closed the connection/],
      ['silent', 504, 'timeout', /did not answer in time \(upstream\.timeout 300 ms/],
      ['garbage', 502, 'protocol', /not valid HTTP/],
    ];
    for (const [m, status, kind, msg] of cases) {
      mode = m;
      for (let i = 0; i < 3; i++) {
        const res = await post(gw.mcpUrl);
        assert.equal(res.status, status, `${m}: status`);
        await res.body?.cancel();
      }
      const found = await waitFor(
        () => {
          const found = upstreamLines(lines).filter((l) => l.kind === kind);
          return found.length > 0 ? found : undefined;
        },
        2000,
        `the ${kind} line`,
      );
      assert.equal(found.length, 1, `${kind}: three failures, one line (the others are counted)`);
      assert.match(found[0]!.msg, msg);
      assert.equal(found[0]!.upstream, new URL(rawUrl).origin);
      if (kind !== 'protocol') assert.equal(typeof found[0]!.code, 'string', `${kind}: its error code`);
    }
  });

  it('a refused connection and an unresolvable host, each with a line of its own', async () => {
    const closed = await gateway(`http://127.0.0.1:${await freePort()}/mcp`);
    const res = await post(closed.gw.mcpUrl);
    assert.equal(res.status, 502);
    const refused = await waitFor(
      () => upstreamLines(closed.lines).find((l) => l.kind === 'refused'),
      2000,
      'refused',
    );
    assert.equal(refused.code, 'ECONNREFUSED');
    assert.match(refused.msg, /refused the connection/);

    const nowhere = await gateway('http://mcpgate-test.invalid/mcp');
    const res2 = await post(nowhere.gw.mcpUrl);
    assert.equal(res2.status, 502);
    const unreachable = await waitFor(
      () => upstreamLines(nowhere.lines).find((l) => l.kind === 'unreachable'),
      5000,
      'unreachable',
    );
    assert.match(unreachable.msg, /host unreachable: check upstream\.url/);
  });

  it('warns at start when the upstream does not answer', async () => {
    const { lines } = await gateway(`http://127.0.0.1:${await freePort()}/mcp`);
    const line = await waitFor(
      () => lines.find((l) => /upstream does not answer/.test(l.msg)),
      3000,
      'the start warning',
    );
    assert.equal(line.level, 'warn');
  });
});

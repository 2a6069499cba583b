/**
 * A key lends the upstream only the roots it is allowed (src/policy/roots.ts), end to end: the real
 * SDK client (roots capability, a `roots/list` handler) through the real gateway to a roots-aware
 * SDK server that, like server-filesystem, serves the client's roots in place of its configured
 * directory (test/helpers/roots-upstream.ts). Before, the client's answer passed as sent, so any key
 * allowed `read_file` read anywhere its client named.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult, Root } from '@modelcontextprotocol/sdk/types.js';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startRootsUpstream } from '../helpers/roots-upstream.ts';
import type { RootsUpstream } from '../helpers/roots-upstream.ts';
import { waitFor } from '../helpers/net.ts';
import { startRawUpstreamGateway } from '../helpers/raw-upstream.ts';

const NO_ROOTS = mintKey(randomBytes(32));
const PROJECT = mintKey(randomBytes(32));
const OUTSIDE = mintKey(randomBytes(32));
const SECRET = 'the secret outside the served directory';

type Transport = 'streamable-http' | 'sse';

interface Setup {
  dir: string;
  served: string;
  secret: string;
  outside: string;
}

async function makeFiles(): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgate-roots-'));
  const served = join(dir, 'served');
  const outside = join(dir, 'outside');
  await mkdir(served);
  await mkdir(outside);
  await writeFile(join(served, 'public.txt'), 'public');
  const secret = join(outside, 'secret.txt');
  await writeFile(secret, SECRET);
  return { dir, served, secret, outside };
}

function config(upstream: RootsUpstream, transport: Transport, outside: string): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
  transport: ${transport}
auth:
  session_secret: "${'r'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: no-roots
    hash: "sha256:${sha256Hex(NO_ROOTS)}"
    allow: [read_file]
  - label: project
    hash: "sha256:${sha256Hex(PROJECT)}"
    allow: [read_file]
    roots: ["file:///work/project/*"]
  - label: outside
    hash: "sha256:${sha256Hex(OUTSIDE)}"
    allow: [read_file]
    roots: ["${pathToFileURL(outside).href}"]
`;
}

interface Connected {
  client: Client;
  /** How many POSTs `rewrite` respelled. */
  readonly rewritten: () => number;
  setRoots(roots: Root[]): Promise<void>;
}

/**
 * The SDK client lending `roots`; `rewrite` respells the body of each POST holding its roots
 * answer, as a hostile client would send it.
 */
async function connect(
  url: string,
  transport: Transport,
  key: string,
  roots: Root[],
  rewrite?: (body: string) => string,
): Promise<Connected> {
  let current = roots;
  let rewritten = 0;
  const client = new Client(
    { name: 'roots-e2e', version: '1.0.0' },
    { capabilities: { roots: { listChanged: true } } },
  );
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: current }));
  const respell = async (input: string | URL, init?: RequestInit): Promise<Response> => {
    const body = init?.body;
    if (rewrite !== undefined && typeof body === 'string' && body.includes('"result":{"roots"')) {
      rewritten++;
      return fetch(input, { ...init, body: rewrite(body) });
    }
    return fetch(input, init);
  };
  const requestInit = { headers: { Authorization: `Bearer ${key}` } };
  const t =
    transport === 'sse'
      ? new SSEClientTransport(new URL(url), { requestInit, fetch: respell })
      : new StreamableHTTPClientTransport(new URL(url), { requestInit, fetch: respell });
  await client.connect(t);
  return {
    client,
    rewritten: () => rewritten,
    async setRoots(next) {
      current = next;
      await client.sendRootsListChanged();
    },
  };
}

async function read(client: Client, path: string): Promise<{ text: string; isError: boolean }> {
  const result = (await client.callTool({ name: 'read_file', arguments: { path } })) as CallToolResult;
  const first = result.content[0];
  return { text: first?.type === 'text' ? first.text : '', isError: result.isError === true };
}

function suite(transport: Transport) {
  let files: Setup;
  let upstream: RootsUpstream;
  let gateway: TestGateway;

  before(async () => {
    files = await makeFiles();
    upstream = await startRootsUpstream(files.served, transport);
    gateway = await startTestGateway(config(upstream, transport, files.outside));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
    await rm(files.dir, { recursive: true, force: true });
  });

  /** Connects, and waits for the upstream to have asked for and received the roots. */
  async function lend(key: string, roots: Root[], rewrite?: (body: string) => string) {
    const before = upstream.lent.length;
    const connected = await connect(gateway.mcpUrl, transport, key, roots, rewrite);
    const received = await waitFor(() => upstream.lent[before], 5000, 'the roots answer');
    return { ...connected, received };
  }

  /** The audit line of the POST that carried the roots answer withheld `uris`. */
  async function audited(key: string, uris: string[]) {
    const line = await waitFor(() =>
      gateway.auditLines.find((l) => l.key === key && l.roots_withheld !== undefined),
    );
    assert.equal(line.roots_withheld, uris.length);
    assert.deepEqual(line.roots_withheld_uris, uris);
    assert.equal(line.decision, 'allow');
    return line;
  }

  it(`hole (${transport}): a key with no roots lends file:/// and reads outside the upstream's directory; failed before: read`, async () => {
    const { client, received } = await lend(NO_ROOTS, [{ uri: 'file:///', name: 'everything' }]);
    try {
      assert.deepEqual(received, []);
      const inside = await read(client, join(files.served, 'public.txt'));
      assert.deepEqual(inside, { text: 'public', isError: false });
      const secret = await read(client, files.secret);
      assert.equal(secret.isError, true, `the upstream served ${secret.text}`);
      assert.match(secret.text, /Access denied/);
    } finally {
      await client.close();
    }
    await audited('no-roots', ['file:///']);
  });

  it(`hole (${transport}): a key allowed file:///work/project/* lends that and file:///etc; failed before: both reached the upstream`, async () => {
    // First no roots, then (notifications/roots/list_changed) the project and /etc.
    const { client, setRoots } = await lend(PROJECT, []);
    try {
      const before = upstream.lent.length;
      await setRoots([
        { uri: 'file:///work/project/app', name: 'app' },
        { uri: 'file:///etc', name: 'etc' },
      ]);
      const received = await waitFor(() => upstream.lent[before], 5000, 'the changed roots');
      assert.deepEqual(received, [{ uri: 'file:///work/project/app', name: 'app' }]);
      const body = upstream.bodies.find((b) => b.includes('file:///work/project/app'));
      assert.ok(body !== undefined && !body.includes('file:///etc'), `the upstream got ${body}`);
    } finally {
      await client.close();
    }
    await audited('project', ['file:///etc']);
  });

  it(`hole (${transport}): \`roots\` spelled with an escape lends file:///; failed before: read`, async () => {
    const { client, received, rewritten } = await lend(NO_ROOTS, [{ uri: 'file:///' }], (body) =>
      body.replace('"result":{"roots"', '"result":{"r\\u006f\\u006fts"'),
    );
    try {
      assert.equal(rewritten(), 1);
      assert.deepEqual(received, []);
      assert.equal((await read(client, files.secret)).isError, true);
    } finally {
      await client.close();
    }
  });

  it(`hole (${transport}): a repeated \`roots\` key lends file:/// after an allowed root; failed before: read`, async () => {
    const served = pathToFileURL(files.outside).href;
    const { client, received, rewritten } = await lend(OUTSIDE, [{ uri: 'file:///' }], (body) =>
      body.replace('"result":{"roots":', `"result":{"roots":[{"uri":"${served}"}],"roots":`),
    );
    try {
      assert.equal(rewritten(), 1);
      // The strict parse reads the last `roots`, as the upstream does: file:/// is withheld from it.
      assert.deepEqual(received, []);
      assert.equal((await read(client, files.secret)).isError, true);
    } finally {
      await client.close();
    }
  });

  it(`(${transport}) a root the key may lend reaches the upstream, which serves it`, async () => {
    const outside = pathToFileURL(files.outside).href;
    const { client, received } = await lend(OUTSIDE, [
      { uri: outside, name: 'outside' },
      { uri: 'file:///', name: 'everything' },
    ]);
    try {
      assert.deepEqual(received, [{ uri: outside, name: 'outside' }]);
      assert.deepEqual(await read(client, files.secret), { text: SECRET, isError: false });
    } finally {
      await client.close();
    }
  });
}

describe('roots: a key lends the upstream only the roots it is allowed (Streamable HTTP)', () => {
  suite('streamable-http');
});

describe('roots: a key lends the upstream only the roots it is allowed (HTTP+SSE)', () => {
  suite('sse');
});

describe('roots: 2026-07-28 roots in a retried request’s inputResponses', () => {
  it('hole: a retried tools/call lends file:/// in its inputResponses; failed before: it reached the upstream', async () => {
    const seen: string[] = [];
    const up = await startRawUpstreamGateway(
      (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          seen.push(body);
          const { id } = JSON.parse(body) as { id: unknown };
          const result = { resultType: 'complete', content: [{ type: 'text', text: 'ok' }] };
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ jsonrpc: '2.0', id, result }));
        });
      },
      NO_ROOTS,
      ['read_file'],
    );
    try {
      const response = await fetch(up.gateway.mcpUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${NO_ROOTS}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'read_file',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: {
            name: 'read_file',
            arguments: { path: '/etc/hostname' },
            inputResponses: { roots: { roots: [{ uri: 'file:///', name: 'everything' }] } },
            requestState: 'opaque',
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientCapabilities': { roots: {} },
            },
          },
        }),
      });
      assert.equal(response.status, 200, await response.clone().text());
      assert.equal(seen.length, 1);
      const params = (JSON.parse(seen[0]!) as { params: Record<string, unknown> }).params;
      assert.deepEqual(params.inputResponses, { roots: { roots: [] } });
      assert.equal(params.requestState, 'opaque');
      const line = await waitFor(() => up.gateway.auditLines.find((l) => l.tool === 'read_file'));
      assert.equal(line.roots_withheld, 1);
      assert.deepEqual(line.roots_withheld_uris, ['file:///']);
    } finally {
      await up.close();
    }
  });
});

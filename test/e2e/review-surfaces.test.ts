/**
 * Attack review (surfaces): everything a key reaches that is not `tools/call` (resources, resource
 * templates, prompts, completion, subscriptions, list cursors). Through the real gateway in front of
 * a stateless v1 SDK server (McpServer) and a recording upstream. "failed before:" tests failed on
 * the code they were written against; "holds:" tests are attacks that held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

const KEY = newKey();
const SECRET = 'v'.repeat(40);

/** The files the upstream serves: the key may read under /public only. */
const FILES: Record<string, string> = {
  '/public/readme': 'public text',
  '/secret': 'TOP SECRET',
  '/public': 'the directory listing of /public',
};

/**
 * A stateless v1 SDK server with resource templates whose variables are a query value
 * (`{?path}`, `{&path}`), a path-style parameter (`{;path}`) or the rest of a path (`{+path}`, as
 * FastMCP's `{path*}`) naming a file under /public, resolved as a file server resolves a relative
 * name (FastMCP's `parse_qs` also percent-decodes a query value). `reads` records every URI the
 * upstream was asked to read.
 */
async function startFileServer(reads: string[]) {
  const build = () => {
    const server = new McpServer({ name: 'files', version: '1' }, { capabilities: { resources: {} } });
    for (const [name, template] of [
      ['query', 'file:///public/doc{?path}'],
      ['continued', 'file:///public/doc?v=1{&path}'],
      ['matrix', 'file:///public/doc{;path}'],
      ['tree', 'file:///public/tree/{+path}'],
    ] as const) {
      server.registerResource(name, new ResourceTemplate(template, { list: undefined }), {}, (uri, vars) => {
        reads.push(uri.href);
        // As Python's pathlib (`Path(base) / name`) and Node's path.resolve join: a rooted name
        // replaces the base.
        const path = posix.resolve('/public', decodeURIComponent(String(vars.path)));
        return { contents: [{ uri: uri.href, text: FILES[path] ?? `no file ${path}` }] };
      });
    }
    return server;
  };
  const http: HttpServer = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await build().connect(transport);
    res.on('close', () => void transport.close());
    await transport.handleRequest(req, res, body ? (JSON.parse(body) as unknown) : undefined);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    async close() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'surfaces', version: '1' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${KEY}` } },
    }),
  );
  return client;
}

describe('surfaces review: a resource template variable outside the URI path', () => {
  let files: Awaited<ReturnType<typeof startFileServer>>;
  let gateway: TestGateway;
  let client: Client;
  const reads: string[] = [];
  before(async () => {
    files = await startFileServer(reads);
    gateway = await startTestGateway(
      reviewConfig(files.url, [{ label: 'alice', key: KEY, resources: ['file:///public/*'] }], '', {
        secret: SECRET,
        resources: [],
      }),
    );
    client = await connect(gateway.mcpUrl);
  });
  after(async () => {
    await client.close();
    await gateway.close(200);
    await files.close();
  });

  it('holds: a file under /public named by a query value is read', async () => {
    const result = await client.readResource({ uri: 'file:///public/doc?path=readme' });
    assert.deepEqual(
      result.contents.map((c) => (c as { text: string }).text),
      ['public text'],
    );
  });

  it('hole: failed before: a dot segment as a query or path-parameter value ("?path=../secret") read outside the grant', async () => {
    for (const uri of [
      'file:///public/doc?path=../secret',
      'file:///public/doc?path=..%2Fsecret',
      'file:///public/doc?path=%2e%2e/secret',
      'file:///public/doc?path=..',
      'file:///public/doc?v=1&path=../secret',
      'file:///public/doc;path=../secret',
    ]) {
      const before = reads.length;
      const lines = gateway.auditLines.length;
      await assert.rejects(
        client.readResource({ uri }),
        (err: Error & { code?: number }) =>
          err.code === -32602 && err.message.includes(`Resource ${uri} not found`),
        uri,
      );
      assert.deepEqual(reads.slice(before), [], `${uri} never reaches the upstream`);
      const line = gateway.auditLines.slice(lines).find((l) => l.rpc_method === 'resources/read');
      assert.equal(line?.decision, 'deny', uri);
      assert.equal(line?.reason, 'ERR_RESOURCE_DENIED', uri);
      assert.equal(line?.resource, uri, uri);
    }
  });

  it('holds: a file under /public named by the rest of the path is read', async () => {
    const result = await client.readResource({ uri: 'file:///public/tree/readme' });
    assert.deepEqual(
      result.contents.map((c) => (c as { text: string }).text),
      ['public text'],
    );
  });

  it('hole: failed before: an empty segment starting a rooted name ("/public/tree//secret", "?path=/secret") read outside the grant', async () => {
    for (const uri of [
      'file:///public/tree//secret',
      'file:///public/tree/%2Fsecret',
      'file:///public/tree/\\secret',
      'file:///public/doc?path=/secret',
      'file:///public/doc?path=%2Fsecret',
      'file:///public/doc;path=/secret',
    ]) {
      const before = reads.length;
      await assert.rejects(
        client.readResource({ uri }),
        (err: Error & { code?: number }) =>
          err.code === -32602 && err.message.includes(`Resource ${uri} not found`),
        uri,
      );
      assert.deepEqual(reads.slice(before), [], `${uri} never reaches the upstream`);
    }
  });
});

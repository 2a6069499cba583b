/**
 * Attack review (uripolicy): resource URI allowlists, by differential fuzzing. A key's `resources`
 * are globs (`file:///public/*`) matched as strings; the upstream resolves the URI. A seeded fuzzer
 * builds URIs the pattern matches and resolves each the way real upstreams do: WHATWG `new URL()`
 * (then `decodeURIComponent` of the path and of query values), Node's `path.resolve`/`path.join` of
 * the decoded rest onto the pattern's directory (and of its NFKC form), Python's `urllib.parse` +
 * `posixpath.normpath` and `pathlib` (one python3 process for every case), and the v1 SDK's RFC 6570
 * templates (`{path}`, `{+path}`, `{?path}`, `{&path}`, `{;path}`, `{.path}`, a literal before a
 * variable) with the variable decoded and joined to the directory. An allowed URI that resolves
 * outside the directory is a hole. Then the holes it found, through the real gateway in front of a v1
 * SDK server. "failed before:" tests failed on the code they were written against; "holds:" tests
 * are attacks that held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { parseConfigText } from '../../src/config/load.ts';
import { compileGrants } from '../../src/policy/grants.ts';
import { resourceAllowed } from '../../src/policy/judge.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

/** mulberry32: a fixed seed gives the same cases on every run. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * What a name is built of: plain names, dots and separators in every spelling (percent-encoded,
 * double-encoded, overlong UTF-8, Unicode look-alikes that NFKC maps to `.` and `/`, backslashes),
 * the delimiters of queries and path parameters, spaces (which `new URL()` trims at the end), and
 * the literals of the templates below.
 */
const TOKENS = [
  'a', 'readme', 'doc', 'x', 'K', 'é', 'ſ', '-', '_', '~', '.', '..', '/', '\\', '%2e', '%2E', '%2f',
  '%2F', '%5c', '%5C', '%252e', '%252f', '%25', '%c0%ae', '%00', '%0a', '%20', ' ', '+', '?', '#', '=',
  '&', ';', ',', '@', ':', '\uff0e', '\u2024', '\u2025', '\ufe52', '\u2215', '\uff0f', '\uff3c',
  '\u00a0', '\u2028', '\ufeff', '%EF%BC%8E', '%E2%80%A5', 'path=', 'doc?path=', 'doc;path=', 'doc-',
  'doc.', '?v=1&path=',
]; // prettier-ignore

interface Scope {
  /** The pattern's literal part: the key is allowed `${prefix}*`. */
  readonly prefix: string;
  /** The directory the pattern names, as a path. */
  readonly base: string;
}

const SCOPES: readonly Scope[] = [
  { prefix: 'file:///public/', base: '/public' },
  { prefix: 'https://files.example/public/', base: '/public' },
  { prefix: 'demo://resource/static/', base: '/static' },
];

/**
 * Templates an upstream may serve under the pattern, as the v1 SDK matches them. Left out: a
 * reserved expansion right after a literal in the same segment (`doc{+path}`, and `doc{#path}`, which
 * the SDK matches without its `#`): `doc/etc/passwd` is a plain path, and only the upstream knows
 * its variable starts after `doc` (the README tells operators to end a pattern's literal with `/`).
 */
const TEMPLATE_TAILS = [
  '{path}',
  '{+path}',
  '{path*}',
  'tree/{+path}',
  'doc{?path}',
  'doc?v=1{&path}',
  'doc{;path}',
  'doc{.path}',
  'doc-{path}',
  '{name}.md',
];

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Every path the Node resolvers read `uri` as (`how`, path). */
function nodeReadings(scope: Scope, uri: string, templates: readonly UriTemplate[]): [string, string][] {
  const out: [string, string][] = [];
  const { base } = scope;
  const join = (how: string, value: string | undefined) => {
    if (value === undefined) return;
    out.push([`${how} resolve`, posix.resolve(base, value)]);
    out.push([`${how} join`, posix.join(base, value)]);
    out.push([`${how} nfkc`, posix.resolve(base, value.normalize('NFKC'))]);
  };
  try {
    const url = new URL(uri);
    const path = decode(url.pathname);
    if (path !== undefined) out.push(['whatwg path', posix.resolve(path)]);
    for (const pair of url.search.slice(1).split('&'))
      join('whatwg query', decode(pair.slice(pair.indexOf('=') + 1)));
  } catch {
    // not a URL to WHATWG: other resolvers still read it
  }
  join('rest', decode(uri.slice(scope.prefix.length).split(/[?#]/)[0] as string));
  for (const template of templates) {
    let vars: Record<string, string | string[]> | null;
    try {
      vars = template.match(uri);
    } catch {
      continue;
    }
    for (const value of Object.values(vars ?? {}).flat())
      join(`template ${template.toString()}`, decode(value));
  }
  return out;
}

const PYTHON = String.raw`
import json, posixpath, sys
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, unquote, urlsplit
request = json.load(sys.stdin)
out = []
for base, uri, rest in request:
    paths = []
    try:
        parts = urlsplit(uri)
        paths.append(posixpath.normpath(unquote(parts.path)))
        for _, value in parse_qsl(parts.query, keep_blank_values=True):
            paths.append(posixpath.normpath(posixpath.join(base, value)))
        name = unquote(rest.split('?')[0].split('#')[0])
        paths.append(posixpath.normpath(str(PurePosixPath(base) / name)))
    except ValueError:
        pass
    out.append(paths)
json.dump(out, sys.stdout)
`;

const inside = (base: string, path: string) => path === base || path.startsWith(`${base}/`);

describe('uripolicy review: differential fuzzing of resource URI patterns', () => {
  it('hole: failed before: URIs a wildcard allows resolve outside its directory (".. " trimmed by new URL(), "doc-..", "doc-%2Fsecret", NFKC "‥")', () => {
    const rand = random(0x5eed);
    const cases: { scope: Scope; uri: string }[] = [];
    const seen = new Set<string>();
    for (const scope of SCOPES) {
      for (let i = 0; i < 12_000; i++) {
        let rest = '';
        for (let n = 1 + Math.floor(rand() * 6); n > 0; n--)
          rest += TOKENS[Math.floor(rand() * TOKENS.length)];
        const uri = scope.prefix + rest;
        if (seen.has(uri)) continue;
        seen.add(uri);
        const grants = compileGrants({ allow: [], prompts: [], resources: [`${scope.prefix}*`] });
        if (resourceAllowed(grants, uri)) cases.push({ scope, uri });
      }
    }
    const python = JSON.parse(
      execFileSync('python3', ['-c', PYTHON], {
        input: JSON.stringify(
          cases.map(({ scope, uri }) => [scope.base, uri, uri.slice(scope.prefix.length)]),
        ),
        maxBuffer: 64 << 20,
      }).toString(),
    ) as string[][];
    const templates = new Map(
      SCOPES.map((s) => [s, TEMPLATE_TAILS.map((t) => new UriTemplate(s.prefix + t))]),
    );
    const holes: string[] = [];
    cases.forEach(({ scope, uri }, i) => {
      const readings = nodeReadings(scope, uri, templates.get(scope) ?? []);
      for (const path of python[i] ?? []) readings.push(['python', path]);
      for (const [how, path] of readings) {
        if (!inside(scope.base, path))
          holes.push(`${JSON.stringify(uri)} is ${JSON.stringify(path)} to ${how}`);
      }
    });
    assert.ok(cases.length > 1000, `the fuzzer allowed only ${cases.length} URIs: it tests too little`);
    assert.deepEqual(holes.slice(0, 20), [], `${holes.length} readings outside the pattern's directory`);
  });

  it('holds: plain names the fuzzer builds are allowed (the rule is no deny-all)', () => {
    const grants = compileGrants({
      allow: [],
      prompts: [],
      resources: ['file:///public/*', 'demo://resource/*'],
    });
    for (const uri of [
      'file:///public/readme',
      'file:///public/a.b/c...d',
      'file:///public/caf\u00e9.txt',
      'file:///public/caf%C3%A9%20menu.txt',
      'file:///public/doc?path=a%2Freadme&v=1',
      'file:///public/doc-readme',
      'file:///public/notes/',
      'file:///public/{+path}',
      'demo://resource/static/document/architecture.md',
      'demo://resource/dynamic/text/1',
    ]) {
      assert.equal(resourceAllowed(grants, uri), true, uri);
    }
  });
});

describe("uripolicy review: a wildcard in a pattern's host", () => {
  const HASH = 'a'.repeat(64);
  const problems = (patterns: readonly string[]) =>
    parseConfigText(
      `upstream:\n  url: http://x/mcp\nkeys:\n  - label: a\n    hash: "${HASH}"\n    resources: ${JSON.stringify(patterns)}\n`,
      {},
      Date.parse('2026-06-01T00:00:00Z'),
    ).issues.map((i) => i.path);

  it('hole: failed before: "https://*.example.com/*" and "https://api.example.com*" matched URIs of another host, and the config was accepted', () => {
    const grants = compileGrants({
      allow: [],
      prompts: [],
      resources: ['https://*.example.com/*', 'https://api.example.com*'],
    });
    for (const uri of [
      'https://evil.example/.example.com/x',
      'https://evil.example?.example.com/x',
      'https://api.example.com@evil.example/x',
      'https://api.example.com.evil.example/x',
    ]) {
      // What the key is allowed is the operator's: the gateway cannot judge such a pattern, so the
      // config names it instead of serving it.
      assert.notEqual(new URL(uri).hostname.endsWith('.example.com'), true, uri);
      assert.equal(grants.resource(uri), true, `${uri}: the glob alone matches it`);
    }
    assert.deepEqual(problems(['https://*.example.com/*']), ['keys[0].resources[0]']);
    assert.deepEqual(problems(['https://api.example.com*']), ['keys[0].resources[0]']);
    assert.deepEqual(problems(['*://files.example/*']), ['keys[0].resources[0]']);
  });

  it('holds: patterns with the host written out, or any host, are accepted', () => {
    assert.deepEqual(
      problems([
        'file:///public/*',
        'https://files.example/*',
        'https://*',
        'ui://*',
        'demo://resource/*',
        '*',
      ]),
      [],
    );
  });
});

const KEY = newKey();
const SECRET = 'u'.repeat(40);

/** The files the upstream serves: the key may read under /public only. */
const FILES: Record<string, string> = {
  '/public/readme': 'public text',
  '/secret': 'TOP SECRET',
  '/': 'the listing of /',
};

/**
 * A stateless v1 SDK server serving files through templates, each variable percent-decoded and
 * resolved onto /public as a file server does (`path.resolve`, Python's `Path(base) / name`), and the
 * whole filesystem under `file://{+path}`. The SDK reads `new URL(uri).toString()`: the URI its
 * handler gets is the WHATWG reading. `reads` records every path a handler resolved.
 */
async function startFileServer(reads: string[]) {
  const build = () => {
    const server = new McpServer({ name: 'files', version: '1' }, { capabilities: { resources: {} } });
    for (const [name, template, base] of [
      ['query', 'file:///public/doc{?path}', '/public'],
      ['prefixed', 'file:///public/doc-{name}', '/public'],
      ['everything', 'file://{+path}', '/'],
    ] as const) {
      server.registerResource(name, new ResourceTemplate(template, { list: undefined }), {}, (uri, vars) => {
        const path = posix.resolve(base, decodeURIComponent(String(Object.values(vars)[0])));
        reads.push(path);
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

describe('uripolicy review: what the fuzzer found, through the gateway', () => {
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
    client = new Client({ name: 'uripolicy', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      }),
    );
  });
  after(async () => {
    await client.close();
    await gateway.close(200);
    await files.close();
  });

  it('holds: files under /public are read by a query value and after a literal', async () => {
    for (const uri of ['file:///public/doc?path=readme', 'file:///public/doc-readme']) {
      const result = await client.readResource({ uri });
      assert.deepEqual(
        result.contents.map((c) => (c as { text: string }).text),
        ['public text'],
        uri,
      );
    }
  });

  it('hole: failed before: a URI the wildcard allows made the SDK server read outside /public (".. " that new URL() trims, "doc-..", "doc-%2Fsecret")', async () => {
    for (const uri of [
      // new URL() trims the space: the SDK reads file:/// and file:///public/doc?path=..
      'file:///public/.. ',
      'file:///public/doc?path=.. ',
      // a variable after a literal in its segment: `..` or a rooted name to doc-{name}
      'file:///public/doc-..',
      'file:///public/doc-%2Fsecret',
      'file:///public/doc-..%2Fsecret',
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
    }
  });
});

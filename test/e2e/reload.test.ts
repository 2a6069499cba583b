/**
 * SIGHUP reloads the config of the real `mcpgate serve` process without a restart: a key added
 * works at once, a key removed or disabled is refused at once (its open session and GET stream
 * included), a changed allowlist applies to the next call, an invalid config is refused whole (the
 * running one stays, the problem is logged with its path), and settings that cannot change live
 * are logged as needing a restart. Real SDK clients keep their sessions open across the reloads.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { runCli, startServe } from '../helpers/cli.ts';
import type { ServeProcess } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';

const KEYS = { alice: mintKey(randomBytes(32)), bob: mintKey(randomBytes(32)) };
const SECRET = randomBytes(24).toString('hex');

interface KeyEntry {
  label: keyof typeof KEYS;
  allow: string[];
  disabled?: boolean;
}

describe('reload on SIGHUP (mcpgate serve)', () => {
  let upstream: SdkUpstream;
  let dir: string;
  let path: string;
  let gw: ServeProcess;
  const clients: Client[] = [];

  const configText = (keys: KeyEntry[], extra = '') =>
    [
      'listen: 127.0.0.1:0',
      'upstream:',
      `  url: ${upstream.url}`,
      extra,
      'auth:',
      `  session_secret: "${SECRET}"`,
      'keys:',
      ...keys.map(
        (k) =>
          `  - label: ${k.label}\n    hash: "sha256:${sha256Hex(KEYS[k.label])}"\n    allow: ${JSON.stringify(k.allow)}` +
          (k.disabled ? '\n    disabled: true' : ''),
      ),
      '',
    ].join('\n');

  /** Writes the config, sends SIGHUP and waits for the reload's last log line. */
  async function reload(text: string, via: 'kill' | 'cli' = 'kill'): Promise<string> {
    await writeFile(path, text);
    const before = gw.stderr().length;
    if (via === 'kill') gw.child.kill('SIGHUP');
    else {
      const sent = await runCli(['reload', '--pid-file', join(dir, 'mcpgate.pid')]);
      assert.equal(sent.code, 0, sent.stderr);
      assert.match(sent.stdout, new RegExp(`^sent SIGHUP to ${gw.child.pid}`));
    }
    return waitFor(
      () => {
        const added = gw.stderr().slice(before);
        return /"msg":"(config reloaded|config not reloaded)/.test(added) ? added : undefined;
      },
      5000,
      'the reload to finish',
    );
  }

  async function connect(label: keyof typeof KEYS): Promise<Client> {
    const client = new Client({ name: `reload-${label}`, version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(gw.url), {
      requestInit: { headers: { authorization: `Bearer ${KEYS[label]}` } },
    });
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  const echo = async (client: Client, message: string) => {
    const result = (await client.callTool({ name: 'echo', arguments: { message } })) as {
      content: { text: string }[];
      isError?: boolean;
    };
    return result;
  };

  before(async () => {
    upstream = await startSdkUpstream();
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-reload-'));
    path = join(dir, 'mcpgate.yaml');
    await writeFile(path, configText([{ label: 'alice', allow: ['echo'] }]));
    gw = await startServe(['--config', path, '--log-level', 'info', '--pid-file', join(dir, 'mcpgate.pid')]);
  });
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await gw?.stop();
    await upstream?.close();
  });

  let alice: Client;
  let bob: Client;
  const auditLines = () =>
    gw
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { http_method: string; key?: string; reason?: string });

  it('a key added works at once; an open session of an unchanged key goes on', async () => {
    alice = await connect('alice');
    assert.deepEqual((await echo(alice, 'before')).content, [{ type: 'text', text: 'Echo: before' }]);
    await assert.rejects(connect('bob'), /401|nauthorized/);

    const log = await reload(
      configText([
        { label: 'alice', allow: ['echo'] },
        { label: 'bob', allow: ['echo'] },
      ]),
    );
    assert.match(log, /"msg":"config reloaded"/);
    assert.match(log, /"keys":2/);
    bob = await connect('bob');
    assert.deepEqual((await echo(bob, 'bob here')).content, [{ type: 'text', text: 'Echo: bob here' }]);
    // Alice's session, opened before the reload, carries on.
    assert.deepEqual((await echo(alice, 'after')).content, [{ type: 'text', text: 'Echo: after' }]);
  });

  it('a key removed is refused at once: its open session and its open GET stream', async () => {
    // The SDK client opened its GET stream on the session after initialize: wait until it is open.
    await waitFor(
      () =>
        upstream.received.filter((r) => r.method === 'GET' && r.headers['mcp-session-id'] !== undefined)
          .length >= 2 || undefined,
      3000,
      "alice's and bob's GET streams to reach the upstream",
    );
    const log = await reload(configText([{ label: 'alice', allow: ['echo'] }]));
    assert.match(log, /"ended_streams":1/);
    await assert.rejects(echo(bob, 'gone?'), /401|nauthorized/);
    assert.deepEqual((await echo(alice, 'still')).content, [{ type: 'text', text: 'Echo: still' }]);
    await waitFor(
      () =>
        gw
          .stdout()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { http_method: string; key?: string; reason?: string })
          .find((a) => a.http_method === 'GET' && a.key === 'bob' && a.reason === 'ERR_AUTH_UNKNOWN_KEY'),
      3000,
      "the audit line of bob's GET stream, ended by the reload",
    );
  });

  it('an allowlist change applies to the next call of an open session', async () => {
    const streamsBefore = auditLines().filter((a) => a.http_method === 'GET' && a.key === 'alice').length;
    await reload(configText([{ label: 'alice', allow: ['progress'] }]));
    // Alice's GET stream was ended (her key changed): its line says why.
    const ended = await waitFor(
      () => auditLines().filter((a) => a.http_method === 'GET' && a.key === 'alice')[streamsBefore],
      3000,
      "the audit line of alice's GET stream, ended by the reload",
    );
    assert.equal(ended.reason, 'ERR_CONFIG_RELOADED');
    const denied = await echo(alice, 'denied now').catch((err: Error) => err);
    assert.ok(
      denied instanceof Error ? /not found/i.test(denied.message) : denied.isError === true,
      `echo after it was removed from alice's allow: ${JSON.stringify(denied)}`,
    );
    assert.ok(!upstream.received.some((r) => r.body.includes('denied now')), 'the upstream never saw it');
    await reload(configText([{ label: 'alice', allow: ['echo'] }]));
    assert.deepEqual((await echo(alice, 'back')).content, [{ type: 'text', text: 'Echo: back' }]);
  });

  it('an invalid config is refused whole: the problems are logged with their paths, the running config stays', async () => {
    const log = await reload(
      configText(
        [
          { label: 'alice', allow: ['echo'] },
          { label: 'bob', allow: ['echo'] },
        ],
        '  timeout: soon',
      ) + 'colour: blue\n',
    );
    assert.match(log, /"path":"upstream\.timeout","msg":"must be a duration/);
    assert.match(log, /"path":"colour","msg":"unknown field/);
    assert.match(log, /"msg":"config not reloaded: the running config stays/);
    // Bob, only in the refused file, is still unknown; alice goes on.
    await assert.rejects(connect('bob'), /401|nauthorized/);
    assert.deepEqual((await echo(alice, 'unchanged')).content, [{ type: 'text', text: 'Echo: unchanged' }]);
  });

  it('a setting that cannot change live is reported as needing a restart and keeps its value', async () => {
    const log = await reload(
      configText([{ label: 'alice', allow: ['echo'] }], '  timeout: 7s').replace(
        'listen: 127.0.0.1:0',
        'listen: 127.0.0.1:1',
      ),
    );
    assert.match(log, /"path":"listen","msg":"changed, but applies only after a restart/);
    assert.match(log, /"path":"upstream\.timeout","msg":"changed, but applies only after a restart/);
    assert.match(log, /"msg":"config reloaded"/);
    assert.deepEqual((await echo(alice, 'same port')).content, [{ type: 'text', text: 'Echo: same port' }]);
  });

  it('a key disabled is refused at once (reload sent with `mcpgate reload --pid-file`)', async () => {
    const log = await reload(configText([{ label: 'alice', allow: ['echo'], disabled: true }]), 'cli');
    assert.match(log, /"msg":"config reloaded"/);
    await assert.rejects(echo(alice, 'disabled'), /401|nauthorized/);
    assert.ok(!upstream.received.some((r) => r.body.includes('"disabled"')), 'the upstream never saw it');
  });
});

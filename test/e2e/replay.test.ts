/**
 * A named security regression: a resuming GET (`Last-Event-ID`) replays the events of a cut POST
 * stream, and must not replay a list unfiltered. The attack: ask for tools/list, drop the
 * connection after the first event, then resume with GET and read the whole list.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));
const VERSION = '2025-06-18';

/** Reads an SSE response until an event whose data holds `until`, then stops; returns the text. */
async function readUntil(res: Response, until: string): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (!text.includes(until)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // timed out (the request's signal): return what arrived
  }
  await reader.cancel().catch(() => {});
  return text;
}

function lastEventIdBefore(sse: string, marker: string): string {
  const events = sse.split(/\n\n/);
  const index = events.findIndex((e) => e.includes(marker));
  const earlier = events
    .slice(0, index)
    .reverse()
    .find((e) => /^id: /m.test(e));
  assert.ok(earlier, `an event id before the ${marker} event`);
  return /^id: (.*)$/m.exec(earlier)![1]!;
}

function toolNames(sse: string): string[] {
  const data = sse
    .split(/\n\n/)
    .map((e) => /^data: (.*)$/m.exec(e)?.[1])
    .find((d) => d !== undefined && d.includes('"tools"'));
  assert.ok(data, 'a tools/list result event');
  return (JSON.parse(data) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);
}

describe('resuming a stream with Last-Event-ID', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ replay: true });
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
auth:
  session_secret: "${'s'.repeat(40)}"
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [echo]
`);
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  async function session(url: string, headers: Record<string, string>): Promise<string> {
    const init = await fetch(url, {
      method: 'POST',
      headers: {
        ...headers,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'replay', version: '1' } },
      }),
    });
    await init.text();
    return init.headers.get('mcp-session-id')!;
  }

  async function listThenResume(
    url: string,
    headers: Record<string, string>,
  ): Promise<{ first: string; replayed: string }> {
    const sid = await session(url, headers);
    const common = { ...headers, 'mcp-session-id': sid, 'mcp-protocol-version': VERSION };
    const list = await fetch(url, {
      method: 'POST',
      headers: {
        ...common,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/list',
        params: { _meta: { progressToken: 'p' } },
      }),
    });
    const first = await list.text();
    const resume = await fetch(url, {
      headers: {
        ...common,
        accept: 'text/event-stream',
        'last-event-id': lastEventIdBefore(first, '"tools"'),
      },
    });
    assert.equal(resume.status, 200);
    return { first, replayed: await readUntil(resume, '"tools"') };
  }

  it('replays the list directly, so the attack is real against this upstream', async () => {
    const { replayed } = await listThenResume(upstream.url, {});
    assert.ok(toolNames(replayed).includes('secret_admin'));
  });

  it('filters the replayed list through the gateway exactly as the original answer', async () => {
    const { first, replayed } = await listThenResume(gateway.mcpUrl, { authorization: `Bearer ${KEY}` });
    assert.deepEqual(toolNames(first), ['echo']);
    assert.deepEqual(toolNames(replayed), ['echo']);
  });
});

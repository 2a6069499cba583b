/**
 * Flows review: the day's new refusals (session-signed tags, related-task judged on every request,
 * owed errors on SSE answers, case-variant list entries) against what real clients do. The v1 SDK
 * client drives server-everything directly and through the gateway and must see the same thing.
 * These held when written; they guard flows no other test drives.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { startEverything } from '../helpers/everything.ts';
import type { Everything } from '../helpers/everything.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

const SECRET = 'r'.repeat(40);
const KEY = newKey();

/** A client that runs the server's sampling and elicitation requests as its own tasks when asked. */
async function connect(url: string, headers: Record<string, string>): Promise<Client> {
  const taskStore = new InMemoryTaskStore();
  const client = new Client(
    { name: 'flows', version: '1' },
    {
      capabilities: {
        sampling: {},
        elicitation: { form: {} },
        roots: {},
        tasks: { requests: { sampling: { createMessage: {} }, elicitation: { create: {} } } },
      },
      taskStore,
    },
  );
  // The answer comes later than the request, so the server polls tasks/get on the client at least once.
  const asTask = async <T extends Record<string, unknown>>(
    task: unknown,
    extra: {
      taskStore?: {
        createTask(options: { ttl?: number }): Promise<{ taskId: string }>;
        storeTaskResult(id: string, status: 'completed', result: T): Promise<void>;
      };
      taskRequestedTtl?: number;
    },
    result: T,
  ) => {
    if (!task || !extra.taskStore) return result;
    const created = await extra.taskStore.createTask({ ttl: extra.taskRequestedTtl });
    setTimeout(() => void extra.taskStore!.storeTaskResult(created.taskId, 'completed', result), 300);
    return { task: created } as unknown as T;
  };
  client.setRequestHandler(CreateMessageRequestSchema, (req, extra) =>
    asTask(req.params.task, extra as never, {
      role: 'assistant' as const,
      content: { type: 'text' as const, text: 'sampled-here' },
      model: 'm',
    }),
  );
  client.setRequestHandler(ElicitRequestSchema, (req, extra) =>
    asTask(req.params.task, extra as never, { action: 'accept' as const, content: { name: 'Ada' } }),
  );
  client.setRequestHandler(ListRootsRequestSchema, () =>
    Promise.resolve({ roots: [{ uri: 'file:///work', name: 'work' }] }),
  );
  // The store's expiry timers (the server asks a 5-minute ttl) would keep the test process alive.
  const close = client.close.bind(client);
  client.close = () => (taskStore.cleanup(), close());
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  // server-everything registers the task-aware tools once notifications/initialized has been handled.
  await new Promise((r) => setTimeout(r, 300));
  return client;
}

/** A tool result's text without the task ids and session ids that differ between two runs. */
const text = (result: unknown) =>
  JSON.stringify(result)
    .replace(/[0-9a-f]{32}/g, 'ID')
    .replace(/created at [^"]*"/g, 'created at T"')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'ID');

describe('flows review: the v1 SDK client on server-everything, directly and through the gateway', () => {
  let everything: Everything;
  let gateway: TestGateway;
  before(async () => {
    everything = await startEverything();
    gateway = await startTestGateway(
      reviewConfig(everything.url, [{ label: 'alice', key: KEY, allow: ['*'], resources: ['*'] }], '', {
        secret: SECRET,
        resources: [],
      }).replace(/(resources: \["\*"\])/, '$1\n    prompts: ["*"]\n    roots: ["file:///work"]'),
    );
  });
  after(async () => {
    await gateway.close(200);
    await everything.close();
  });

  async function both<T>(flow: (client: Client) => Promise<T>): Promise<{ direct: T; through: T }> {
    const results: T[] = [];
    for (const [url, headers] of [
      [everything.url, {}],
      [gateway.mcpUrl, { authorization: `Bearer ${KEY}` }],
    ] as const) {
      const client = await connect(url, headers);
      try {
        results.push(await flow(client));
      } finally {
        await client.close();
      }
    }
    return { direct: results[0]!, through: results[1]! };
  }

  it('holds: the server runs sampling and elicitation as client tasks (its tasks/get and tasks/result to the client, the answers back), as directly', async () => {
    const { direct, through } = await both(async (client) => {
      const sampled = await client.callTool({
        name: 'trigger-sampling-request-async',
        arguments: { prompt: 'hi' },
      });
      const elicited = await client.callTool({ name: 'trigger-elicitation-request-async', arguments: {} });
      return [text(sampled), text(elicited)];
    });
    assert.match(through[0]!, /\[COMPLETED\] Async sampling completed!.*Poll 1: completed.*sampled-here/);
    assert.match(through[1]!, /\[COMPLETED\] User provided the requested information!.*Name: Ada/);
    assert.deepEqual(through, direct);
    const refused = gateway.auditLines.filter((l) => l.decision !== 'allow');
    assert.deepEqual(refused, []);
    // The client's answers to the server's tasks/get and tasks/result each have their line.
    const answers = gateway.auditLines.filter((l) => l.http_method === 'POST' && l.status === 202);
    assert.ok(answers.length >= 6, String(answers.length));
  });

  it('holds: prompts with arguments, completion of a prompt and a template argument, roots, logging level', async () => {
    const { direct, through } = await both(async (client) => [
      await client.getPrompt({ name: 'args-prompt', arguments: { city: 'Paris', state: 'TX' } }),
      await client.complete({
        ref: { type: 'ref/prompt', name: 'completable-prompt' },
        argument: { name: 'department', value: 'E' },
      }),
      await client.complete({
        ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' },
        argument: { name: 'resourceId', value: '1' },
      }),
      text(await client.readResource({ uri: 'demo://resource/dynamic/text/1' })),
      text(await client.callTool({ name: 'get-roots-list', arguments: {} })),
      await client.setLoggingLevel('debug'),
    ]);
    assert.deepEqual(through, direct);
    assert.deepEqual(through[1], { completion: { values: ['Engineering'], total: 1, hasMore: false } });
    assert.match(String(through[4]), /file:\/\/\/work/);
  });
});

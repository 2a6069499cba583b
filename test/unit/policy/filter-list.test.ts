import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import type { JsonRpcId } from '../../../src/jsonrpc/message.ts';
import { ALLOW_ALL, compileGrants } from '../../../src/policy/grants.ts';
import {
  filterJsonResponseBody,
  filterListResult,
  rewriteEventData,
} from '../../../src/policy/filter-list.ts';
import type { ResponseAction } from '../../../src/policy/filter-list.ts';
import { judge } from '../../../src/policy/judge.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';
import { SseParser } from '../../../src/proxy/sse.ts';
import { createSseRewriter } from '../../../src/proxy/sse-rewrite.ts';
import type { TaskScope } from '../../../src/policy/tasks.ts';

const grants = compileGrants({
  allow: ['echo', 'search_*'],
  prompts: ['greeting'],
  resources: ['file:///public/*', 'test://template/{id}'],
});

/** An SSE stream rewritten by a plan, the way the response matcher applies one to each event. */
function sseFilter(p: ReadonlyMap<JsonRpcId, ResponseAction>, g: typeof grants, tasks?: TaskScope) {
  return createSseRewriter((data) => rewriteEventData(data, p, g, tasks));
}

const tools = {
  tools: [
    { name: 'echo', inputSchema: { type: 'object' } },
    { name: 'secret_admin', inputSchema: { type: 'object' } },
    { name: 'search_web', description: 'web' },
    { name: 'rm_rf' },
  ],
  nextCursor: 'page-2',
  _meta: { note: 'kept' },
};

const plan = (entries: [JsonRpcId, ResponseAction][]) => new Map<JsonRpcId, ResponseAction>(entries);

describe('filterListResult', () => {
  it('keeps only allowed tools and leaves the rest of the result alone', () => {
    const out = filterListResult('tools', tools, grants) as typeof tools;
    assert.deepEqual(
      out.tools.map((t) => t.name),
      ['echo', 'search_web'],
    );
    assert.equal(out.nextCursor, 'page-2');
    assert.equal(out._meta, tools._meta);
    assert.deepEqual(out.tools[0], tools.tools[0]);
    assert.equal(tools.tools.length, 4, 'the input is not mutated');
  });

  it('returns the very same result when nothing has to go', () => {
    const ok = { tools: [{ name: 'echo' }], nextCursor: 'c' };
    assert.equal(filterListResult('tools', ok, grants), ok);
  });

  it('keeps nextCursor when a page ends up empty', () => {
    const page = { tools: [{ name: 'secret_admin' }, { name: 'rm_rf' }], nextCursor: 'page-3' };
    assert.deepEqual(filterListResult('tools', page, grants), { tools: [], nextCursor: 'page-3' });
  });

  it('filters prompts by name, resources by uri, templates by uriTemplate', () => {
    const prompts = { prompts: [{ name: 'greeting' }, { name: 'internal_prompt' }] };
    assert.deepEqual(filterListResult('prompts', prompts, grants), { prompts: [{ name: 'greeting' }] });
    const resources = {
      resources: [
        { uri: 'file:///public/readme.md', name: 'readme' },
        { uri: 'file:///private/keys.txt', name: 'keys' },
        { uri: 'file:///public/../private/keys.txt', name: 'sneaky' },
      ],
    };
    assert.deepEqual(filterListResult('resources', resources, grants), {
      resources: [{ uri: 'file:///public/readme.md', name: 'readme' }],
    });
    const templates = {
      resourceTemplates: [
        { uriTemplate: 'test://template/{id}', name: 't' },
        { uriTemplate: 'file:///private/{path}', name: 'p' },
      ],
    };
    assert.deepEqual(filterListResult('resourceTemplates', templates, grants), {
      resourceTemplates: [{ uriTemplate: 'test://template/{id}', name: 't' }],
    });
  });

  it('lists only the principal\u2019s own tasks', () => {
    const registry = new TaskOwnership({ now: () => 0 });
    registry.record('a', 't1');
    registry.record('b', 't2');
    const result = {
      tasks: [
        { taskId: 't1', status: 'working' },
        { taskId: 't2', status: 'working' },
      ],
      nextCursor: 'n',
    };
    assert.deepEqual(filterListResult('tasks', result, grants, registry.scope('a', ALLOW_ALL)), {
      tasks: [{ taskId: 't1', status: 'working' }],
      nextCursor: 'n',
    });
    assert.deepEqual(
      filterListResult('tasks', result, grants),
      { tasks: [], nextCursor: 'n' },
      'no registry: none',
    );
  });

  it('fails closed on malformed entries and lists', () => {
    const weird = { tools: [null, 'echo', { name: 42 }, { title: 'echo' }, ['echo'], { name: 'echo' }] };
    assert.deepEqual(filterListResult('tools', weird, grants), { tools: [{ name: 'echo' }] });
    assert.deepEqual(filterListResult('tools', { tools: { echo: {}, rm_rf: {} } }, grants), { tools: [] });
    const noList = { other: 1 };
    assert.equal(filterListResult('tools', noList, grants), noList);
    assert.equal(filterListResult('tools', null, grants), null);
  });
});

describe('filterJsonResponseBody', () => {
  it('filters a single response', () => {
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: tools }));
    const out = JSON.parse(filterJsonResponseBody(body, plan([[1, 'tools']]), grants).toString());
    assert.deepEqual(
      out.result.tools.map((t: { name: string }) => t.name),
      ['echo', 'search_web'],
    );
    assert.equal(out.result.nextCursor, 'page-2');
    assert.equal(out.id, 1);
    assert.equal(out.jsonrpc, '2.0');
  });

  it('returns the same bytes when nothing changes, or the id is not planned', () => {
    const body = Buffer.from(
      JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'echo' }] } }),
    );
    assert.equal(filterJsonResponseBody(body, plan([[1, 'tools']]), grants), body);
    const other = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 2, result: tools }));
    assert.equal(filterJsonResponseBody(other, plan([[1, 'tools']]), grants), other);
    const stringId = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: '1', result: tools }));
    assert.equal(
      filterJsonResponseBody(stringId, plan([[1, 'tools']]), grants),
      stringId,
      'id "1" is not id 1',
    );
    const error = Buffer.from(
      JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32601, message: 'no' } }),
    );
    assert.equal(filterJsonResponseBody(error, plan([[1, 'tools']]), grants), error);
  });

  it('filters each response of a batch by its own request', () => {
    const body = Buffer.from(
      JSON.stringify([
        { jsonrpc: '2.0', id: 'p', result: { prompts: [{ name: 'greeting' }, { name: 'internal_prompt' }] } },
        { jsonrpc: '2.0', id: 'c', result: { content: [{ type: 'text', text: 'secret_admin' }] } },
        { jsonrpc: '2.0', id: 't', result: tools },
      ]),
    );
    const out = JSON.parse(
      filterJsonResponseBody(
        body,
        plan([
          ['p', 'prompts'],
          ['t', 'tools'],
        ]),
        grants,
      ).toString(),
    );
    assert.deepEqual(out[0].result, { prompts: [{ name: 'greeting' }] });
    assert.deepEqual(out[1].result, { content: [{ type: 'text', text: 'secret_admin' }] });
    assert.equal(out[2].result.tools.length, 2);
  });

  it('refuses a body it cannot read (it must not pass unfiltered)', () => {
    assert.throws(
      () =>
        filterJsonResponseBody(
          Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"tools":['),
          plan([[1, 'tools']]),
          grants,
        ),
      (err: unknown) => isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL',
    );
  });

  it('records the task a task-creating call returns, so the principal may poll it', () => {
    const registry = new TaskOwnership({ now: () => 0 });
    const a = registry.scope('key-a', ALLOW_ALL);
    const created2025 = { jsonrpc: '2.0', id: 1, result: { task: { taskId: 'old-1', status: 'working' } } };
    const created2026 = {
      jsonrpc: '2.0',
      id: 2,
      result: { resultType: 'task', taskId: 'new-1', status: 'working' },
    };
    const body = Buffer.from(JSON.stringify([created2025, created2026]));
    const out = filterJsonResponseBody(
      body,
      plan([
        [1, { tool: 'echo' }],
        [2, { tool: 'echo' }],
      ]),
      grants,
      a,
    );
    assert.equal(out, body, 'the response itself is untouched');
    assert.equal(a.owns('old-1'), true);
    assert.equal(a.owns('new-1'), true);
    assert.equal(registry.scope('key-b', ALLOW_ALL).owns('new-1'), false);
    const poll = { jsonrpc: '2.0' as const, id: 3, method: 'tasks/get', params: { taskId: 'new-1' } };
    assert.equal(judge(poll, grants, { unknownMethods: 'deny' }, a).allowed, true);
    assert.equal(
      judge(poll, grants, { unknownMethods: 'deny' }, registry.scope('key-b', ALLOW_ALL)).allowed,
      false,
    );
  });
});

describe('list filtering over SSE', () => {
  const response = {
    jsonrpc: '2.0',
    id: 5,
    result: { tools: [{ name: 'echo' }, { name: 'secret_admin' }], nextCursor: 'more' },
  };

  function streamOf(events: string[]): Buffer {
    return Buffer.from(events.join(''));
  }

  function parse(bytes: Buffer) {
    const p = new SseParser();
    return [...p.push(bytes), ...p.end()];
  }

  it('passes progress and logging events untouched and filters the result event, keeping its id', () => {
    const progress =
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n';
    const log =
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"secret_admin"}}\n\n';
    // The result arrives with its JSON split over several data lines.
    const json = JSON.stringify(response, null, 1).split('\n');
    const result = `event: message\nid: stream-1_9\n${json.map((l) => `data: ${l}\n`).join('')}\n`;
    const input = streamOf([progress, log, result]);
    const rewrite = sseFilter(plan([[5, 'tools']]), grants);
    const out: Buffer[] = [];
    // Byte by byte: the worst chunking there is.
    for (let i = 0; i < input.length; i++) out.push(...rewrite.push(input.subarray(i, i + 1)));
    out.push(...rewrite.end());
    const text = Buffer.concat(out).toString();
    assert.ok(text.startsWith(progress + log), 'earlier events pass untouched and first');
    const events = parse(Buffer.from(text));
    const last = events[events.length - 1];
    assert.equal(last?.id, 'stream-1_9');
    assert.equal(last?.event, 'message');
    assert.deepEqual(JSON.parse(last?.data ?? ''), {
      jsonrpc: '2.0',
      id: 5,
      result: { tools: [{ name: 'echo' }], nextCursor: 'more' },
    });
  });

  it('keeps nextCursor on an empty page', () => {
    const data = rewriteEventData(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 5,
        result: { tools: [{ name: 'secret_admin' }], nextCursor: 'more' },
      }),
      plan([[5, 'tools']]),
      grants,
    );
    assert.deepEqual(JSON.parse(data ?? ''), {
      jsonrpc: '2.0',
      id: 5,
      result: { tools: [], nextCursor: 'more' },
    });
  });

  it('leaves events alone that are not the planned response', () => {
    const p = plan([[5, 'tools']]);
    assert.equal(rewriteEventData(JSON.stringify({ ...response, id: 6 }), p, grants), undefined);
    assert.equal(rewriteEventData('not json', p, grants), undefined);
    assert.equal(
      rewriteEventData(JSON.stringify({ jsonrpc: '2.0', method: 'x', id: 5, result: {} }), p, grants),
      undefined,
    );
    // The planned response is re-serialised even when nothing goes (the client gets exactly what was judged).
    const allowedOnly = JSON.stringify({ jsonrpc: '2.0', id: 5, result: { tools: [{ name: 'echo' }] } });
    assert.equal(rewriteEventData(allowedOnly, p, grants), allowedOnly);
  });

  it('the JSON side of the same rewrite filters a whole body', () => {
    const out = filterJsonResponseBody(Buffer.from(JSON.stringify(response)), plan([[5, 'tools']]), grants);
    assert.deepEqual(JSON.parse(out.toString()).result.tools, [{ name: 'echo' }]);
  });
});

describe('task recording over SSE', () => {
  it('records the task from the result event of a long tool call stream', () => {
    const registry = new TaskOwnership({ now: () => 0 });
    const scope = registry.scope('key-a', ALLOW_ALL);
    const rewrite = sseFilter(plan([[9, { tool: 'echo' }]]), grants, scope);
    const progress =
      'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n';
    const created =
      'data: {"jsonrpc":"2.0","id":9,"result":{"resultType":"task","taskId":"t-9","status":"working"}}\n\n';
    const input = progress.repeat(3) + created;
    const out = [...rewrite.push(Buffer.from(input)), ...rewrite.end()];
    assert.equal(Buffer.concat(out).toString(), input, 'nothing is rewritten');
    assert.equal(scope.owns('t-9'), true);
  });
});

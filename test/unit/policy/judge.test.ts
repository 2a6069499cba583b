import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';
import { RPC } from '../../../src/jsonrpc/errors.ts';
import { ALLOW_ALL, compileGrants } from '../../../src/policy/grants.ts';
import { judge, resourceAllowed } from '../../../src/policy/judge.ts';
import type { Verdict } from '../../../src/policy/judge.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';

const grants = compileGrants({
  allow: ['echo', 'search_*'],
  prompts: ['greeting'],
  resources: ['file:///public/*', 'test://static/{id}'],
});
const deny = { unknownMethods: 'deny' } as const;
const allowUnknown = { unknownMethods: 'allow' } as const;

function req(method: string, params?: Record<string, unknown>, id: string | number = 7): JsonRpcMessage {
  return params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
}

function assertAllowed(v: Verdict): void {
  assert.equal(v.allowed, true);
  assert.equal(v.error, undefined);
  assert.equal(v.record.decision, 'allow');
  assert.equal(v.record.reason, undefined);
}

function assertDenied(v: Verdict, code: string, rpc: number, message: string, status = 200): void {
  assert.equal(v.allowed, false);
  assert.equal(v.record.decision, 'deny');
  assert.equal(v.record.reason, code);
  assert.ok(v.error);
  assert.equal(v.error.code, code);
  assert.equal(v.error.rpcCode, rpc);
  assert.equal(v.error.status, status);
  assert.equal(v.error.message, message);
  assert.equal(v.error.rpcId, v.record.rpc_id);
  assert.equal(v.filter, undefined);
}

function assertInvalid(v: Verdict): void {
  assert.equal(v.allowed, false);
  assert.equal(v.record.decision, 'invalid');
  assert.equal(v.error?.code, 'ERR_INVALID_PARAMS');
  assert.equal(v.error?.rpcCode, RPC.INVALID_PARAMS);
  assert.equal(v.error?.status, 200);
}

describe('judge: lifecycle, notifications and responses', () => {
  for (const method of ['initialize', 'ping', 'server/discover', 'logging/setLevel']) {
    it(`allows ${method}`, () => {
      const v = judge(req(method, {}), compileGrants({ allow: [], prompts: [], resources: [] }), deny);
      assertAllowed(v);
      assert.deepEqual(v.record, { rpc_method: method, rpc_id: 7, decision: 'allow' });
      assert.equal(v.filter, undefined);
    });
  }

  for (const method of [
    'notifications/initialized',
    'notifications/cancelled',
    'notifications/progress',
    'notifications/roots/list_changed',
    'notifications/tasks/status',
  ]) {
    it(`allows the client notification ${method}`, () => {
      const v = judge({ jsonrpc: '2.0', method, params: {} }, grants, deny);
      assertAllowed(v);
      assert.equal(v.record.rpc_id, null);
    });
  }

  it('refuses a client notification sent with an id (its requestId would go untranslated)', () => {
    for (const method of ['notifications/cancelled', 'notifications/progress', 'notifications/initialized']) {
      const v = judge(req(method, { requestId: 'g1x' }), grants, deny);
      assert.equal(v.allowed, false);
      assert.equal(v.record.decision, 'invalid');
      assert.equal(v.error?.code, 'ERR_INVALID_PARAMS');
    }
  });

  it('allows a response from the client (to a server request)', () => {
    const v = judge({ jsonrpc: '2.0', id: 'srv-1', result: { roots: [] } }, grants, deny);
    assertAllowed(v);
    assert.deepEqual(v.record, { rpc_method: undefined, rpc_id: 'srv-1', decision: 'allow' });
    assertAllowed(judge({ jsonrpc: '2.0', id: 3, error: { code: -1, message: 'no' } }, grants, deny));
  });
});

describe('judge: unknown and server-only methods', () => {
  it('denies an unknown method like a server without it (-32601, HTTP 200)', () => {
    const v = judge(req('admin/shutdown', {}), ALLOW_ALL, deny);
    assertDenied(v, 'ERR_METHOD_DENIED', RPC.METHOD_NOT_FOUND, 'Method not found');
    assert.equal(v.record.rpc_method, 'admin/shutdown');
  });

  it('answers an unknown 2026-07-28 request with HTTP 404, as such a server does', () => {
    const params = { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } };
    assertDenied(
      judge(req('admin/shutdown', params), grants, deny),
      'ERR_METHOD_DENIED',
      -32601,
      'Method not found',
      404,
    );
  });

  it('judges a method 2026-07-28 removed as that revision does: 404, -32601, whatever the grants', () => {
    const modern = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };
    const removed: [string, Record<string, unknown>][] = [
      [
        'initialize',
        { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      ],
      ['ping', {}],
      ['logging/setLevel', { level: 'info' }],
      ['resources/subscribe', { uri: 'file:///secret' }],
      ['tasks/result', { taskId: 't1' }],
      ['tasks/list', {}],
    ];
    for (const [method, params] of removed) {
      for (const g of [grants, ALLOW_ALL]) {
        assertDenied(
          judge(req(method, { ...params, _meta: modern }), g, deny),
          'ERR_METHOD_DENIED',
          -32601,
          'Method not found',
          404,
        );
      }
      // The same request of an earlier revision is judged by its rule, as before.
      assert.notEqual(judge(req(method, params), ALLOW_ALL, deny).error?.status, 404);
    }
    // What 2026-07-28 has (and its tasks extension) is judged by the rules.
    assert.equal(judge(req('tools/list', { _meta: modern }), ALLOW_ALL, deny).allowed, true);
    assert.equal(judge(req('server/discover', { _meta: modern }), ALLOW_ALL, deny).allowed, true);
    assert.equal(judge(req('tasks/update', { taskId: 't', _meta: modern }), ALLOW_ALL, deny).allowed, true);
  });

  it('denies an unknown notification too', () => {
    const v = judge({ jsonrpc: '2.0', method: 'notifications/custom' }, grants, deny);
    assertDenied(v, 'ERR_METHOD_DENIED', RPC.METHOD_NOT_FOUND, 'Method not found');
    assert.equal(v.error?.rpcId, null);
  });

  it('forwards unknown methods with policy.unknown_methods: allow', () => {
    const v = judge(req('vendor/extension', {}), grants, allowUnknown);
    assertAllowed(v);
    assert.equal(v.record.rpc_method, 'vendor/extension');
  });

  for (const method of [
    'sampling/createMessage',
    'roots/list',
    'elicitation/create',
    'notifications/tools/list_changed',
  ]) {
    it(`denies ${method} from a client (only servers send it), even with unknown_methods: allow`, () => {
      assertDenied(
        judge(req(method, {}), ALLOW_ALL, allowUnknown),
        'ERR_METHOD_DENIED',
        -32601,
        'Method not found',
      );
    });
  }
});

describe('judge: listing', () => {
  const cases = [
    ['tools/list', 'tools'],
    ['prompts/list', 'prompts'],
    ['resources/list', 'resources'],
    ['resources/templates/list', 'resourceTemplates'],
    ['tasks/list', 'tasks'],
  ] as const;
  for (const [method, filter] of cases) {
    it(`allows ${method} and asks for its response to be filtered (${filter})`, () => {
      const v = judge(req(method, { cursor: 'abc' }), grants, deny);
      assertAllowed(v);
      assert.equal(v.filter, filter);
    });
  }

  it('does not filter for ALLOW_ALL (nothing to hide, nothing to buffer)', () => {
    assert.equal(judge(req('tools/list'), ALLOW_ALL, deny).filter, undefined);
  });
});

describe('judge: lists a key may see whole', () => {
  it("plans every key's lists, `*` included (cursors sealed, other kinds' lists dropped); none without authentication", () => {
    const star = compileGrants({ allow: ['*'], prompts: ['*'], resources: ['*'] });
    const list = (method: string): JsonRpcMessage => ({ jsonrpc: '2.0', id: 1, method });
    assert.equal(judge(list('tools/list'), star, deny).filter, 'tools');
    assert.equal(judge(list('prompts/list'), star, deny).filter, 'prompts');
    assert.equal(judge(list('resources/list'), star, deny).filter, 'resources');
    assert.equal(judge(list('tools/list'), ALLOW_ALL, deny).filter, undefined);
    assert.equal(judge(list('resources/list'), ALLOW_ALL, deny).filter, undefined);
    const narrow = compileGrants({ allow: ['search_*'], prompts: ['a'], resources: [] });
    assert.equal(judge(list('tools/list'), narrow, deny).filter, 'tools');
    assert.equal(judge(list('prompts/list'), narrow, deny).filter, 'prompts');
  });
});

describe('judge: tools/call', () => {
  it('allows a tool in the allowlist, exact or by wildcard', () => {
    const v = judge(req('tools/call', { name: 'echo', arguments: { message: 'hi' } }), grants, deny);
    assertAllowed(v);
    assert.deepEqual(v.record, { rpc_method: 'tools/call', rpc_id: 7, decision: 'allow', tool: 'echo' });
    assert.equal(judge(req('tools/call', { name: 'search_web' }), grants, deny).allowed, true);
  });

  it('denies any other tool with the SDK\u2019s unknown-tool answer', () => {
    const v = judge(req('tools/call', { name: 'rm_rf' }, 'a'), grants, deny);
    assertDenied(v, 'ERR_TOOL_DENIED', RPC.INVALID_PARAMS, 'Tool rm_rf not found');
    assert.equal(v.record.tool, 'rm_rf');
    assert.equal(v.error?.rpcId, 'a');
  });

  it('answers a denied existing tool exactly like a tool that does not exist', () => {
    const a = judge(req('tools/call', { name: 'secret_admin' }), grants, deny).error;
    const b = judge(req('tools/call', { name: 'no_such_tool' }), grants, deny).error;
    assert.equal(a?.rpcCode, b?.rpcCode);
    assert.equal(a?.status, b?.status);
    assert.equal(a?.message.replace('secret_admin', 'X'), b?.message.replace('no_such_tool', 'X'));
  });

  for (const [label, params] of [
    ['no params', undefined],
    ['no name', { arguments: {} }],
    ['a number name', { name: 42 }],
    ['an object name', { name: { toString: 'echo' } }],
    ['a lone surrogate', { name: 'echo\ud800' }],
    ['a NUL', { name: 'search_x\u0000' }],
  ] as const) {
    it(`answers invalid params for ${label}`, () => {
      const v = judge(req('tools/call', params as Record<string, unknown> | undefined), ALLOW_ALL, deny);
      assertInvalid(v);
      assert.equal(v.record.tool, undefined);
    });
  }
});

describe('judge: prompts and resources', () => {
  it('prompts/get is judged by the prompts list', () => {
    assertAllowed(judge(req('prompts/get', { name: 'greeting' }), grants, deny));
    const v = judge(req('prompts/get', { name: 'internal_prompt' }), grants, deny);
    assertDenied(v, 'ERR_PROMPT_DENIED', RPC.INVALID_PARAMS, 'Prompt internal_prompt not found');
    assert.equal(v.record.prompt, 'internal_prompt');
    assertInvalid(judge(req('prompts/get', {}), grants, deny));
  });

  for (const method of ['resources/read', 'resources/subscribe', 'resources/unsubscribe']) {
    it(`${method} is judged by params.uri`, () => {
      const ok = judge(req(method, { uri: 'file:///public/readme.md' }), grants, deny);
      assertAllowed(ok);
      assert.equal(ok.record.resource, 'file:///public/readme.md');
      const v = judge(req(method, { uri: 'file:///private/keys.txt' }), grants, deny);
      assertDenied(
        v,
        'ERR_RESOURCE_DENIED',
        RPC.INVALID_PARAMS,
        'Resource file:///private/keys.txt not found',
      );
      assert.equal(v.record.resource, 'file:///private/keys.txt');
      assertInvalid(judge(req(method, { uri: 7 }), grants, deny));
    });
  }

  for (const uri of [
    'file:///public/../private/keys.txt',
    'file:///public/./../private/keys.txt',
    'file:///public/%2e%2e/private/keys.txt',
    'file:///public/%2E%2e/private/keys.txt',
    'file:///public/..%2fprivate/keys.txt',
    'file:///public/..\\private\\keys.txt',
    'file:///public/sub/..',
    // A template variable outside the path: a query value, a path-style parameter, a list item.
    'file:///public/doc?path=../private/keys.txt',
    'file:///public/doc?path=..%2Fprivate%2Fkeys.txt',
    'file:///public/doc?v=1&path=..',
    'file:///public/doc;path=../private',
    'file:///public/doc#../private',
    'file:///public/a,..',
    // A rooted name, which pathlib and path.resolve put in place of the base.
    'file:///public//etc/passwd',
    'file:///public/%2Fetc/passwd',
    'file:///public/\\etc',
    'file:///public/doc?path=/etc/passwd',
    'file:///public/doc?path=%2fetc',
  ]) {
    it(`refuses a path that climbs out of a wildcard: ${uri}`, () => {
      assert.equal(grants.resource(uri), true, 'the pattern alone would allow it');
      assertDenied(
        judge(req('resources/read', { uri }), grants, deny),
        'ERR_RESOURCE_DENIED',
        -32602,
        `Resource ${uri} not found`,
      );
    });
  }

  it('keeps dots that are not path segments', () => {
    assert.equal(resourceAllowed(grants, 'file:///public/.hidden'), true);
    assert.equal(resourceAllowed(grants, 'file:///public/a..b/c...d'), true);
    assert.equal(resourceAllowed(grants, 'file:///public/doc?path=a..b&v=..c'), true);
    assert.equal(resourceAllowed(grants, 'file:///public/doc?path=a/b&v=c%2Fd'), true);
    const any = compileGrants({ allow: [], prompts: [], resources: ['*'] });
    // The empty authority of `file:///` and the `//` of any authority are no empty segment.
    assert.equal(resourceAllowed(any, 'file:///etc'), true);
    assert.equal(resourceAllowed(any, 'https://example.com/a'), true);
    assert.equal(resourceAllowed(any, 'FILE://host/share'), true);
    // A backslash is no URI character (new URL() reads it as `/` in a file: URI): not plain.
    assert.equal(resourceAllowed(any, 'FILE:\\\\host\\share'), false);
    assert.equal(resourceAllowed(any, '/public//x'), false);
    assert.equal(resourceAllowed(any, 'ui://app/index.html#/home'), true);
  });

  it('compares URIs as strings otherwise', () => {
    const g = compileGrants({
      allow: [],
      prompts: [],
      resources: ['http://example.com/public/*', 'test://static/{id}'],
    });
    assert.equal(resourceAllowed(g, 'http://example.com/public/a%20b'), true);
    assert.equal(resourceAllowed(g, 'http://example.com/public/x/..\\..\\admin'), false);
    assert.equal(resourceAllowed(g, 'test://static/{id}'), true);
    assert.equal(resourceAllowed(g, 'HTTP://EXAMPLE.COM/public/a'), false);
  });
});

describe('judge: completion/complete', () => {
  it('judges a ref/prompt as the prompt', () => {
    const ref = { type: 'ref/prompt', name: 'greeting' };
    const ok = judge(req('completion/complete', { ref, argument: { name: 'a', value: '' } }), grants, deny);
    assertAllowed(ok);
    assert.equal(ok.record.prompt, 'greeting');
    const v = judge(
      req('completion/complete', { ref: { type: 'ref/prompt', name: 'internal' } }),
      grants,
      deny,
    );
    assertDenied(v, 'ERR_PROMPT_DENIED', -32602, 'Prompt internal not found');
  });

  it('judges a ref/resource as the resource (template)', () => {
    const ok = judge(
      req('completion/complete', { ref: { type: 'ref/resource', uri: 'test://static/{id}' } }),
      grants,
      deny,
    );
    assertAllowed(ok);
    assert.equal(ok.record.resource, 'test://static/{id}');
    const v = judge(
      req('completion/complete', { ref: { type: 'ref/resource', uri: 'file:///private/{x}' } }),
      grants,
      deny,
    );
    assertDenied(v, 'ERR_RESOURCE_DENIED', -32602, 'Resource template file:///private/{x} not found');
  });

  it('answers invalid params for a missing or unknown ref', () => {
    assertInvalid(judge(req('completion/complete', {}), grants, deny));
    assertInvalid(
      judge(req('completion/complete', { ref: { type: 'ref/tool', name: 'echo' } }), grants, deny),
    );
    assertInvalid(judge(req('completion/complete', { ref: { type: 'ref/prompt' } }), grants, deny));
  });
});

describe('judge: tasks (only the key\u2019s own)', () => {
  const registry = new TaskOwnership({ now: () => 0 });
  registry.record('key-a', 'task-1');
  const a = registry.scope('key-a', ALLOW_ALL);
  const b = registry.scope('key-b', ALLOW_ALL);

  for (const method of ['tasks/get', 'tasks/result', 'tasks/cancel', 'tasks/update']) {
    it(`${method}: allowed for the owner, an unknown task for anyone else`, () => {
      assertAllowed(judge(req(method, { taskId: 'task-1' }), grants, deny, a));
      const v = judge(req(method, { taskId: 'task-1' }), grants, deny, b);
      assertDenied(v, 'ERR_TASK_DENIED', RPC.INVALID_PARAMS, 'Failed to retrieve task: Task not found');
      assertDenied(
        judge(req(method, { taskId: 'task-2' }), grants, deny, a),
        'ERR_TASK_DENIED',
        -32602,
        'Failed to retrieve task: Task not found',
      );
      assertInvalid(judge(req(method, {}), grants, deny, a));
    });
  }

  it('without a task registry every task is unknown (fail closed), except under ALLOW_ALL', () => {
    assert.equal(judge(req('tasks/get', { taskId: 'task-1' }), grants, deny).allowed, false);
    assert.equal(judge(req('tasks/get', { taskId: 'task-1' }), ALLOW_ALL, deny).allowed, true);
  });

  it('marks task-creating requests so the pipeline records the task', () => {
    const legacy = judge(req('tools/call', { name: 'echo', task: { ttl: 60000 } }), grants, deny, a);
    assert.equal(legacy.recordTask, true);
    const meta = {
      'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } },
    };
    assert.equal(judge(req('tools/call', { name: 'echo', _meta: meta }), grants, deny, a).recordTask, true);
    assert.equal(judge(req('tools/call', { name: 'echo' }), grants, deny, a).recordTask, false);
    assert.equal(
      judge(req('tools/call', { name: 'echo', task: {} }), grants, deny).recordTask,
      false,
      'no registry',
    );
    assert.equal(judge(req('tools/call', { name: 'rm_rf', task: {} }), grants, deny, a).recordTask, false);
  });
});

describe('judge: subscriptions/listen (2026-07-28)', () => {
  const registry = new TaskOwnership({ now: () => 0 });
  registry.record('key-a', 't1');
  const a = registry.scope('key-a', ALLOW_ALL);

  it('allows list-changed subscriptions and allowed resources', () => {
    const notifications = {
      toolsListChanged: true,
      resourceSubscriptions: ['file:///public/a', 'test://static/{id}'],
    };
    assertAllowed(judge(req('subscriptions/listen', { notifications }), grants, deny, a));
    assertAllowed(
      judge(req('subscriptions/listen', { notifications: { taskIds: ['t1'] } }), grants, deny, a),
    );
  });

  it('denies when any subscribed resource is not allowed', () => {
    const notifications = { resourceSubscriptions: ['file:///public/a', 'file:///private/keys.txt'] };
    const v = judge(req('subscriptions/listen', { notifications }), grants, deny, a);
    assertDenied(v, 'ERR_RESOURCE_DENIED', -32602, 'Resource file:///private/keys.txt not found');
  });

  it('denies a task that is not the key\u2019s own', () => {
    const v = judge(
      req('subscriptions/listen', { notifications: { taskIds: ['t1', 't2'] } }),
      grants,
      deny,
      a,
    );
    assertDenied(v, 'ERR_TASK_DENIED', -32602, 'Failed to retrieve task: Task not found');
  });

  it('answers invalid params for malformed filters', () => {
    assertInvalid(judge(req('subscriptions/listen', { notifications: [] }), grants, deny, a));
    assertInvalid(
      judge(req('subscriptions/listen', { notifications: { resourceSubscriptions: 'x' } }), grants, deny),
    );
    assertInvalid(judge(req('subscriptions/listen', { notifications: { taskIds: [1] } }), grants, deny, a));
  });
});

describe('members spelled in another case (an upstream matching keys by case folding)', () => {
  const invalidFor = (message: JsonRpcMessage) => {
    const v = judge(message, grants, deny);
    assert.equal(v.allowed, false);
    assert.equal(v.record.decision, 'invalid');
    assert.equal(v.record.reason, 'ERR_INVALID_PARAMS');
    assert.match(v.error?.message ?? '', /is another spelling of a member the gateway reads/);
  };
  it('refuses a lone variant of a params member the judge reads, for every rule', () => {
    invalidFor(req('tools/call', { Name: 'rm_rf' }));
    invalidFor(req('tools/call', { name: 'echo', Arguments: { cmd: 'x' } }));
    invalidFor(req('tools/call', { naMe: 'rm_rf' }));
    invalidFor(req('tasks/get', { taſkId: 't1' }));
    invalidFor(req('resources/read', { URI: 'file:///etc/shadow' }));
    invalidFor(req('prompts/get', { NAME: 'admin' }));
    invalidFor(req('tasks/get', { taskid: 't1' }));
    invalidFor(req('tools/call', { name: 'echo', _Meta: {} }));
  });
  it('refuses a variant inside ref and notifications, lower-case ones included', () => {
    invalidFor(req('completion/complete', { ref: { type: 'ref/prompt', Name: 'admin' }, argument: {} }));
    invalidFor(req('completion/complete', { ref: { Type: 'ref/resource', uri: 'file:///public/a' } }));
    invalidFor(
      req('subscriptions/listen', {
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' },
        notifications: { resourcesubscriptions: ['file:///etc/shadow'] },
      }),
    );
  });
  it('refuses the snake_case and unprefixed spellings a pydantic upstream reads as the member', () => {
    invalidFor(req('tasks/get', { task_id: 't1' }));
    invalidFor(req('tasks/get', { taskId: 't1', task_id: 't2' }));
    invalidFor(req('notifications/cancelled', { request_id: 'c-7' }));
    invalidFor(req('notifications/cancelled', { RequestId: 'c-8' }));
    invalidFor(req('initialize', { protocol_version: '2026-07-28', capabilities: {}, clientInfo: {} }));
    invalidFor(req('tools/call', { name: 'echo', meta: { progressToken: 1 } }));
    invalidFor(
      req('subscriptions/listen', {
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' },
        notifications: { resource_subscriptions: ['file:///etc/shadow'] },
      }),
    );
    invalidFor(
      req('subscriptions/listen', {
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' },
        notifications: { task_ids: ['t1'] },
      }),
    );
  });
  it('lets every params member the specification defines through, spelled as it spells it', () => {
    for (const [method, params] of [
      [
        'initialize',
        { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } },
      ],
      [
        'completion/complete',
        { ref: { type: 'ref/prompt', name: 'greeting' }, argument: { name: 'a', value: '' }, context: {} },
      ],
      ['logging/setLevel', { level: 'info' }],
      ['tools/list', { cursor: 'c' }],
      ['notifications/cancelled', { requestId: 1, reason: 'r' }],
      ['notifications/progress', { progressToken: 1, progress: 1, total: 2, message: 'm' }],
      ['tools/call', { name: 'echo', arguments: {}, task: { ttl: 1 }, _meta: { progressToken: 1 } }],
    ] as const) {
      const message = method.startsWith('notifications/')
        ? { jsonrpc: '2.0' as const, method, params: params as Record<string, unknown> }
        : req(method, params as Record<string, unknown>);
      const v = judge(message, grants, allowUnknown);
      assert.notEqual(v.record.decision, 'invalid', `${method}: ${v.error?.message}`);
    }
  });
  it('lets exact members and other keys through', () => {
    assertAllowed(
      judge(
        req('tools/call', { name: 'echo', arguments: { Name: 'x' }, cursor: 'c', extra: 1 }),
        grants,
        deny,
      ),
    );
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileGrants, ALLOW_ALL } from '../../../src/policy/grants.ts';
import { KNOWN_METHODS, METHOD_TABLE, METHODS, renderMethodTable } from '../../../src/policy/methods.ts';

/**
 * The method unions of each revision's schema.ts (ClientRequest, ClientNotification, ServerRequest,
 * ServerNotification), and the tasks extension of 2026-07-28.
 */
const SPEC = {
  '2025-03-26': {
    client: [
      'ping',
      'initialize',
      'completion/complete',
      'logging/setLevel',
      'prompts/get',
      'prompts/list',
      'resources/list',
      'resources/templates/list',
      'resources/read',
      'resources/subscribe',
      'resources/unsubscribe',
      'tools/call',
      'tools/list',
      'notifications/cancelled',
      'notifications/progress',
      'notifications/initialized',
      'notifications/roots/list_changed',
    ],
    server: [
      'ping',
      'sampling/createMessage',
      'roots/list',
      'notifications/cancelled',
      'notifications/progress',
      'notifications/message',
      'notifications/resources/updated',
      'notifications/resources/list_changed',
      'notifications/tools/list_changed',
      'notifications/prompts/list_changed',
    ],
  },
  '2025-06-18': { client: [] as string[], server: ['elicitation/create'] },
  '2025-11-25': {
    client: ['tasks/get', 'tasks/result', 'tasks/list', 'tasks/cancel', 'notifications/tasks/status'],
    server: [
      'tasks/get',
      'tasks/result',
      'tasks/list',
      'tasks/cancel',
      'notifications/tasks/status',
      'notifications/elicitation/complete',
    ],
  },
  '2026-07-28': {
    client: [
      'server/discover',
      'completion/complete',
      'prompts/get',
      'prompts/list',
      'resources/list',
      'resources/templates/list',
      'resources/read',
      'subscriptions/listen',
      'tools/call',
      'tools/list',
      'notifications/cancelled',
    ],
    server: [
      'notifications/cancelled',
      'notifications/progress',
      'notifications/message',
      'notifications/resources/updated',
      'notifications/resources/list_changed',
      'notifications/tools/list_changed',
      'notifications/prompts/list_changed',
      'notifications/subscriptions/acknowledged',
    ],
  },
  tasksExtension: { client: ['tasks/get', 'tasks/update', 'tasks/cancel'], server: ['notifications/tasks'] },
};

describe('method table', () => {
  it('holds every method of every revision, with who sends it', () => {
    for (const [revision, { client, server }] of Object.entries(SPEC)) {
      for (const method of client) {
        const spec = METHODS.get(method);
        assert.ok(spec, `${revision}: ${method} missing`);
        assert.notEqual(spec.from, 'server', `${revision}: clients send ${method}`);
        assert.notEqual(spec.rule, 'server-only', `${revision}: ${method} must not be refused`);
      }
      for (const method of server) {
        const spec = METHODS.get(method);
        assert.ok(spec, `${revision}: ${method} missing`);
        assert.notEqual(spec.from, 'client', `${revision}: servers send ${method}`);
      }
    }
  });

  it('lists each method once, and every list rule names its array', () => {
    assert.equal(METHODS.size, METHOD_TABLE.length);
    for (const m of METHOD_TABLE) assert.equal(m.rule === 'list', m.list !== undefined, m.method);
    assert.equal(METHODS.get('tools/list')?.list, 'tools');
    assert.equal(METHODS.get('resources/templates/list')?.list, 'resourceTemplates');
    assert.equal(METHODS.get('tasks/list')?.list, 'tasks');
  });

  it('KNOWN_METHODS maps the lower-case name to the canonical one, for every method', () => {
    assert.equal(KNOWN_METHODS.size, METHOD_TABLE.length);
    for (const m of METHOD_TABLE) assert.equal(KNOWN_METHODS.get(m.method.toLowerCase()), m.method);
    assert.equal(KNOWN_METHODS.get('logging/setlevel'), 'logging/setLevel');
    assert.equal(KNOWN_METHODS.get('logging/setLevel'), undefined);
  });

  it('renders a Markdown table with a row per method and the fallback rows', () => {
    const md = renderMethodTable();
    assert.equal(md, renderMethodTable());
    const rows = md.trimEnd().split('\n');
    assert.equal(rows.length, 2 + METHOD_TABLE.length + 3);
    assert.match(rows[0] as string, /^\| Method \| Sent by \| Revisions \| Rule/);
    for (const m of METHOD_TABLE) assert.ok(md.includes(`| \`${m.method}\` |`), m.method);
    assert.ok(
      md.includes('| `tools/call` | client | 2025-03-26 \u2013 2026-07-28 | `params.name` must match'),
    );
    assert.ok(md.includes('| `tasks/update` | client | 2026-07-28 tasks extension |'));
    assert.ok(md.includes('| `initialize` | client | 2025-03-26 \u2013 2025-11-25 | allowed |'));
    assert.match(md, /any other method .*policy\.unknown_methods: allow/);
    assert.match(md, /revision does not have .*2026-07-28.*Method not found.*404/);
  });
});

describe('compileGrants', () => {
  it('compiles the three lists; each denies by default', () => {
    const g = compileGrants({
      allow: ['echo', 'search_*'],
      prompts: ['greeting'],
      resources: ['file:///public/*'],
    });
    assert.equal(g.tool('echo'), true);
    assert.equal(g.tool('search_web'), true);
    assert.equal(g.tool('greeting'), false);
    assert.equal(g.prompt('greeting'), true);
    assert.equal(g.prompt('echo'), false);
    assert.equal(g.resource('file:///public/a.md'), true);
    assert.equal(g.resource('file:///private/a.md'), false);
    assert.ok(Object.isFrozen(g));
    const none = compileGrants({ allow: [], prompts: [], resources: [] });
    assert.equal(none.tool('echo'), false);
    assert.equal(none.prompt('greeting'), false);
    assert.equal(none.resource('file:///public/a.md'), false);
  });

  it('ALLOW_ALL allows everything', () => {
    assert.equal(ALLOW_ALL.tool('x'), true);
    assert.equal(ALLOW_ALL.prompt('x'), true);
    assert.equal(ALLOW_ALL.resource('x'), true);
  });
});

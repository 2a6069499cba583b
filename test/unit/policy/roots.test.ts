/**
 * The roots a key lends the upstream (src/policy/roots.ts): a client's roots answer reaches the
 * upstream with only the roots whose `uri` the key's `roots` patterns allow, re-serialised, whatever
 * spelling the answer uses; and the inspect step forwards exactly that.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createInspect } from '../../../src/pipeline/inspect.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { ALLOW_ALL, compileGrants } from '../../../src/policy/grants.ts';
import type { Grants } from '../../../src/policy/grants.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';
import {
  carriesRoots,
  judgeRoots,
  lendRoots,
  MAX_WITHHELD_LISTED,
  NOT_A_ROOT,
  rootAllowed,
} from '../../../src/policy/roots.ts';
import type { Withheld } from '../../../src/policy/roots.ts';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { parseConfigText } from '../../../src/config/load.ts';
import { compileClaimGrants, NO_GRANTS } from '../../../src/auth/oauth/claim-grants.ts';
import type { GrantConfig } from '../../../src/config/schema.ts';

const project = compileGrants({
  allow: ['read_file'],
  prompts: [],
  resources: [],
  roots: ['file:///work/project/*', 'file:///work/project'],
});
const none = compileGrants({ allow: ['read_file'], prompts: [], resources: [] });
const tasks = new TaskOwnership({ now: () => 0 });
const inspect = createInspect({ unknownMethods: 'deny', tasks, auditArguments: false });

function context(grants: Grants): RequestContext {
  const principal = { kind: 'key', name: 'k', keyId: 'k1', bindingId: 'b1', grants, limits: undefined };
  return {
    req: { rawHeaders: [] },
    principal,
    calls: [],
    messages: undefined,
    batch: false,
    protocolVersion: undefined,
    rootsWithheld: undefined,
  } as unknown as RequestContext;
}

/** What the upstream would get for `body`, parsed, and what the audit would say was withheld. */
function forwarded(grants: Grants, body: string): { sent: unknown; withheld: Withheld | undefined } {
  const ctx = context(grants);
  const result = inspect(ctx, Buffer.from(body));
  assert.equal(result.answer, undefined);
  return { sent: JSON.parse(result.bytes.toString('utf8')), withheld: ctx.rootsWithheld };
}

const answer = (result: unknown, id: number | string = 0) => JSON.stringify({ jsonrpc: '2.0', id, result });
const fresh = (): Withheld => ({ count: 0, uris: [] });

describe('roots: which roots a key may lend', () => {
  it('a root matches the key’s patterns and is spelled plainly, as a resource URI must be', () => {
    assert.equal(rootAllowed(project, 'file:///work/project/a'), true);
    assert.equal(rootAllowed(project, 'file:///work/project'), true);
    assert.equal(rootAllowed(project, 'file:///etc'), false);
    assert.equal(rootAllowed(project, 'file:///work/project/../../etc'), false);
    assert.equal(rootAllowed(project, 'file:///work/project/%2e%2e/x'), false);
    assert.equal(rootAllowed(project, 'file:///work/project/a\u0000'), false);
    assert.equal(rootAllowed(none, 'file:///work/project/a'), false);
    assert.equal(rootAllowed(none, 'file:///'), false);
  });

  it('a key without `roots` lends none (deny by default), in the config too', () => {
    const { config } = parseConfigText(
      'upstream: {url: "http://127.0.0.1:1/mcp"}\nkeys:\n  - {label: a, hash: "' + 'a'.repeat(64) + '"}\n',
      {},
      Date.now(),
    );
    assert.deepEqual(config?.keys[0]?.roots, []);
  });

  it('an OAuth claim grant lends its own `roots`; a token matching no grant lends none', () => {
    const [grant] = compileClaimGrants([
      { when: { scope: 'files' }, allow: [], prompts: [], resources: [], roots: ['file:///work/project/*'] },
      { when: { scope: 'other' }, allow: [], prompts: [], resources: [], roots: [] },
    ] as unknown as GrantConfig[]);
    assert.equal(rootAllowed(grant!.grants, 'file:///work/project/a'), true);
    assert.equal(rootAllowed(grant!.grants, 'file:///etc'), false);
    assert.equal(rootAllowed(NO_GRANTS, 'file:///work/project/a'), false);
  });

  it('the config refuses a root pattern with a wildcard in its host, as for resources', () => {
    const { config, issues } = parseConfigText(
      'upstream: {url: "http://127.0.0.1:1/mcp"}\nkeys:\n  - {label: a, hash: "' +
        'a'.repeat(64) +
        '", roots: ["https://*.example.com/*"]}\n',
      {},
      Date.now(),
    );
    assert.equal(config, undefined);
    assert.match(issues.map((i) => i.path).join(','), /keys\[0\]\.roots\[0\]/);
  });

  it('the config warns of a root pattern that also lends the siblings of its folder (`/work/project*`)', () => {
    const text = (roots: string) =>
      'upstream: {url: "http://127.0.0.1:1/mcp"}\nkeys:\n  - {label: a, hash: "' +
      'a'.repeat(64) +
      `", roots: ${roots}}\n`;
    const warned = parseConfigText(
      text('["file:///work/project*", "file:///work/app/*", "*"]'),
      {},
      Date.now(),
    );
    assert.ok(warned.config !== undefined, 'a warning, not an error');
    const warnings = warned.issues.filter((i) => i.severity === 'warning');
    assert.deepEqual(
      warnings.map((i) => i.path),
      ['keys[0].roots[0]'],
    );
    assert.match(warnings[0]!.message, /file:\/\/\/work\/project-old/);
    const grant = parseConfigText(
      [
        'public_url: "https://gw.example.com"',
        'upstream: {url: "http://127.0.0.1:1/mcp"}',
        'auth:',
        '  oauth:',
        '    issuer: "https://as.example.com"',
        '    jwks_uri: "https://as.example.com/jwks"',
        '    grants:',
        '      - {name: all, when: {scope: mcp}, allow: ["*"], roots: ["file:///home/team*"]}',
        '',
      ].join('\n'),
      {},
      Date.now(),
    );
    assert.deepEqual(
      grant.issues.filter((i) => i.severity === 'warning').map((i) => i.path),
      ['auth.oauth.grants[0].roots[0]'],
    );
  });

  it('judgeRoots keeps the allowed entries whole and in order, and notes the others', () => {
    const withheld = fresh();
    const kept = judgeRoots(
      [
        { uri: 'file:///etc', name: 'etc' },
        { uri: 'file:///work/project/a', name: 'a', _meta: { x: 1 } },
        'file:///work/project/b',
        { name: 'no uri' },
        { uri: 7 },
        { uri: 'file:///work/project/c', URI: 'file:///' },
        null,
        { uri: 'file:///work/project' },
      ],
      project,
      withheld,
    );
    assert.deepEqual(kept, [
      { uri: 'file:///work/project/a', name: 'a', _meta: { x: 1 } },
      { uri: 'file:///work/project' },
    ]);
    assert.equal(withheld.count, 6);
    assert.deepEqual(withheld.uris, [
      'file:///etc',
      NOT_A_ROOT,
      NOT_A_ROOT,
      NOT_A_ROOT,
      'file:///work/project/c',
      NOT_A_ROOT,
    ]);
  });

  it('`roots` that is not an array becomes []', () => {
    for (const roots of [{ 0: { uri: 'file:///work/project/a' } }, 'file:///', null, 1]) {
      const withheld = fresh();
      assert.deepEqual(judgeRoots(roots, project, withheld), []);
      assert.equal(withheld.count, 1);
    }
  });

  it('the audit names at most MAX_WITHHELD_LISTED withheld roots, and counts them all', () => {
    const withheld = fresh();
    const roots = Array.from({ length: 100 }, (_, i) => ({ uri: `file:///other/${i}` }));
    assert.deepEqual(judgeRoots(roots, project, withheld), []);
    assert.equal(withheld.count, 100);
    assert.equal(withheld.uris.length, MAX_WITHHELD_LISTED);
  });
});

describe('roots: what is a roots answer', () => {
  const msg = (text: string) => JSON.parse(text) as JsonRpcMessage;
  it('a response whose result holds `roots` or another spelling of it, whatever it answers', () => {
    assert.equal(carriesRoots(msg(answer({ roots: [] }, 'x'))), true);
    assert.equal(carriesRoots(msg(answer({ Roots: [] }))), true);
    assert.equal(carriesRoots(msg(answer({ ROOTS: 1 }))), true);
    assert.equal(carriesRoots(msg(answer({ rootſ: [] }))), true);
    assert.equal(carriesRoots(msg(answer({ action: 'accept' }))), false);
    assert.equal(carriesRoots(msg(answer([{ roots: [] }]))), false);
    assert.equal(carriesRoots(msg('{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"roots"}}')), false);
  });
  it('a 2026-07-28 request whose params.inputResponses holds one (bare, or under `result`)', () => {
    const req = (inputResponses: unknown) =>
      msg(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'x', inputResponses },
        }),
      );
    assert.equal(carriesRoots(req({ r: { roots: [] } })), true);
    assert.equal(carriesRoots(req({ r: { result: { roots: [] } } })), true);
    assert.equal(carriesRoots(req([{ roots: [] }])), true);
    assert.equal(carriesRoots(req({ e: { action: 'accept' } })), false);
    assert.equal(
      carriesRoots(msg('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}')),
      false,
    );
  });
});

describe('roots: the inspect step forwards only the roots a key may lend', () => {
  const lent = answer({
    roots: [
      { uri: 'file:///work/project/src', name: 'src' },
      { uri: 'file:///etc', name: 'etc' },
    ],
  });

  it('hole: a key allowed file:///work/project/* lends that and file:///etc; failed before: both reached the upstream', () => {
    const { sent, withheld } = forwarded(project, lent);
    assert.deepEqual(sent, {
      jsonrpc: '2.0',
      id: 0,
      result: { roots: [{ uri: 'file:///work/project/src', name: 'src' }] },
    });
    assert.deepEqual(withheld, { count: 1, uris: ['file:///etc'] });
  });

  it('hole: a key with no `roots` lends file:///; failed before: it reached the upstream', () => {
    const { sent, withheld } = forwarded(none, answer({ roots: [{ uri: 'file:///' }] }));
    assert.deepEqual(sent, { jsonrpc: '2.0', id: 0, result: { roots: [] } });
    assert.deepEqual(withheld, { count: 1, uris: ['file:///'] });
  });

  it('hole: `roots` spelled with an escape is judged as `roots`; failed before: passed as sent', () => {
    const body = '{"jsonrpc":"2.0","id":0,"result":{"r\\u006f\\u006fts":[{"uri":"file:///etc"}]}}';
    const { sent } = forwarded(project, body);
    assert.deepEqual(sent, { jsonrpc: '2.0', id: 0, result: { roots: [] } });
  });

  it('hole: a repeated `roots` key is judged as the strict parse reads it (the last); failed before: passed as sent', () => {
    const body =
      '{"jsonrpc":"2.0","id":0,"result":{"roots":[{"uri":"file:///work/project/a"}],"roots":[{"uri":"file:///etc"},{"uri":"file:///work/project/b"}]}}';
    const { sent, withheld } = forwarded(project, body);
    assert.deepEqual(sent, { jsonrpc: '2.0', id: 0, result: { roots: [{ uri: 'file:///work/project/b' }] } });
    assert.deepEqual(withheld?.uris, ['file:///etc']);
  });

  it('hole: a repeated or escaped `uri` in a root is judged as read; failed before: passed as sent', () => {
    const body =
      '{"jsonrpc":"2.0","id":0,"result":{"roots":[{"uri":"file:///work/project/a","uri":"file:///etc"},{"\\u0075ri":"file:///"}]}}';
    const { sent } = forwarded(project, body);
    assert.deepEqual(sent, { jsonrpc: '2.0', id: 0, result: { roots: [] } });
  });

  it('hole: another spelling of `roots` (`Roots`, `rootſ`) reaches no upstream; failed before: a case-folding decoder read it', () => {
    for (const spelling of ['Roots', 'rootſ', 'ROOTS']) {
      const body = answer({ [spelling]: [{ uri: 'file:///etc' }], _meta: { a: 1 } });
      const { sent, withheld } = forwarded(project, body);
      assert.deepEqual(sent, { jsonrpc: '2.0', id: 0, result: { _meta: { a: 1 } } });
      assert.deepEqual(withheld, { count: 1, uris: ['file:///etc'] });
    }
  });

  it('hole: in a batch, beside a request; failed before: passed as sent', () => {
    const body = `[${lent},{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]`;
    const { sent } = forwarded(project, body);
    assert.deepEqual(sent, [
      { jsonrpc: '2.0', id: 0, result: { roots: [{ uri: 'file:///work/project/src', name: 'src' }] } },
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
    ]);
  });

  it('hole: 2026-07-28 roots in a retried tools/call’s inputResponses; failed before: passed as sent', () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: {
        name: 'read_file',
        arguments: { path: '/etc/passwd' },
        inputResponses: {
          roots: { roots: [{ uri: 'file:///' }, { uri: 'file:///work/project/a' }] },
          wrapped: { result: { roots: [{ uri: 'file:///etc' }] } },
          ask: { action: 'accept', content: { x: 1 } },
        },
        requestState: 's',
      },
    });
    const { sent, withheld } = forwarded(project, body);
    assert.deepEqual((sent as { params: unknown }).params, {
      name: 'read_file',
      arguments: { path: '/etc/passwd' },
      inputResponses: {
        roots: { roots: [{ uri: 'file:///work/project/a' }] },
        wrapped: { result: { roots: [] } },
        ask: { action: 'accept', content: { x: 1 } },
      },
      requestState: 's',
    });
    assert.equal(withheld?.count, 2);
  });

  it('another spelling of inputResponses (`input_responses`, read by pydantic) is refused', () => {
    const ctx = context(project);
    const body =
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","input_responses":{"r":{"roots":[{"uri":"file:///"}]}}}}';
    try {
      const result = inspect(ctx, Buffer.from(body));
      assert.notEqual(result.answer, undefined);
      assert.match(result.answer?.body ?? '', /-32602/);
    } catch (err) {
      assert.ok(isGatewayError(err));
    }
  });

  it('every number keeps its spelling and every other member its value when a roots answer is re-serialised', () => {
    const body =
      '{"jsonrpc":"2.0","id":0,"result":{"roots":[{"uri":"file:///work/project/a","_meta":{"n":1e400,"m":1.0,"big":12345678901234567890,"s":"\\ud83d\\ude00"}},{"uri":"file:///etc"}],"_meta":{"z":-0}}}';
    const ctx = context(project);
    const out = inspect(ctx, Buffer.from(body)).bytes.toString('utf8');
    assert.equal(
      out,
      '{"jsonrpc":"2.0","id":0,"result":{"roots":[{"uri":"file:///work/project/a","_meta":{"n":1e400,"m":1.0,"big":12345678901234567890,"s":"😀"}}],"_meta":{"z":-0}}}',
    );
  });

  it('a body without a roots answer is forwarded as the client’s own bytes (nothing re-serialised)', () => {
    const body = ' {"jsonrpc":"2.0","id":0,"result":{"action":"accept","content":{"n":1.0}}} ';
    const ctx = context(project);
    const result = inspect(ctx, Buffer.from(body));
    assert.equal(result.bytes.toString('utf8'), body.trim());
    assert.equal(ctx.rootsWithheld, undefined);
  });

  it('an answer lending only allowed roots is forwarded with them all, and nothing is said withheld', () => {
    const { sent, withheld } = forwarded(project, answer({ roots: [{ uri: 'file:///work/project/a' }] }));
    assert.deepEqual(sent, { jsonrpc: '2.0', id: 0, result: { roots: [{ uri: 'file:///work/project/a' }] } });
    assert.equal(withheld, undefined);
  });

  it('without authentication (every grant) roots pass as sent', () => {
    const body = answer({ roots: [{ uri: 'file:///' }] });
    const ctx = context(ALLOW_ALL);
    assert.equal(inspect(ctx, Buffer.from(body)).bytes.toString('utf8'), body);
  });

  it('lendRoots re-serialises a long answer whole (long strings are built)', () => {
    const long = 'x'.repeat(40_000);
    const body = answer({ roots: [{ uri: 'file:///work/project/a', name: long }, { uri: 'file:///etc' }] });
    const withheld = fresh();
    const out = JSON.parse(lendRoots(Buffer.from(body), project, withheld).toString('utf8'));
    assert.deepEqual(out.result.roots, [{ uri: 'file:///work/project/a', name: long }]);
  });
});

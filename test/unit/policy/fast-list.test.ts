/** The list fast path filters exactly as the parsed path does, or steps aside. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { filterListFast } from '../../../src/policy/fast-list.ts';
import type { FastListOptions } from '../../../src/policy/fast-list.ts';
import { filterJsonResponseBody, filterListResult } from '../../../src/policy/filter-list.ts';
import { compileGrants } from '../../../src/policy/grants.ts';

const grants = compileGrants({ allow: ['echo', 'search_*'], prompts: ['greet'], resources: [] });
const options = (kinds: Record<string, string> = { '1': 'tools' }): FastListOptions => ({
  kindFor: (id) => kinds[String(id)],
  keep: (kind, name) => (kind === 'tools' ? grants.tool(name) : grants.prompt(name)),
});
const fast = (text: string, kinds?: Record<string, string>) =>
  filterListFast(Buffer.from(text), options(kinds));

describe('list fast path', () => {
  it('keeps the allowed entries byte for byte and everything else in the result', () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      result: {
        tools: [
          {
            name: 'echo',
            inputSchema: { type: 'object', properties: { s: { type: 'string', default: '}]"\\' } } },
          },
          { name: 'rm_rf', description: '{"name":"echo"}' },
          { name: 'search_web' },
        ],
        note: 'abc',
      },
    });
    const out = fast(body);
    assert.ok(out);
    const parsed = JSON.parse(out.toString()) as {
      result: { tools: { name: string }[]; note: string };
    };
    assert.deepEqual(
      parsed.result.tools.map((t) => t.name),
      ['echo', 'search_web'],
    );
    assert.equal(parsed.result.note, 'abc');
  });

  it("leaves to the parsed path a result with a cursor (it seals it) or another kind's list (it drops it)", () => {
    for (const extra of [
      { nextCursor: 'abc' },
      { prompts: [] },
      { resources: [] },
      { resourceTemplates: [] },
      { tasks: [] },
    ]) {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'echo' }], ...extra } });
      assert.equal(fast(body), undefined, JSON.stringify(extra));
    }
  });

  it('returns the very same bytes when nothing has to go, or when the id is not planned', () => {
    const all = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'echo' }] } }));
    assert.equal(filterListFast(all, options()), all);
    const other = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 2, result: { tools: [{ name: 'x' }] } }));
    assert.equal(filterListFast(other, options()), other);
  });

  for (const [name, text] of [
    [
      'a key written with escapes (\\u0074ools)',
      '{"jsonrpc":"2.0","id":1,"result":{"\\u0074ools":[{"name":"rm_rf"}],"tools":[]}}',
    ],
    ['a duplicated tools key', '{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"rm_rf"}]}}'],
    [
      'a duplicated result key',
      '{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"result":{"tools":[{"name":"rm_rf"}]}}',
    ],
    ['a duplicated name key', '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","name":"rm_rf"}]}}'],
    [
      'an escaped name key',
      '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","na\\u006de":"rm_rf"}]}}',
    ],
    [
      'a comment hiding a second tools key from a JSONC client',
      '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"}],"x":[/*"*/],"tools":[{"name":"rm_rf"}],"y":[/*"*/]}}',
    ],
    ['a batch', '[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"rm_rf"}]}}]'],
    ['mismatched brackets', '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"rm_rf"]}]}}'],
    ['trailing bytes', '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"rm_rf"}]}} x'],
    ['tools that is not an array', '{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"rm_rf"}}}'],
    [
      'a control character in a string',
      '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"rm\u0001rf"}]}}',
    ],
  ] as const) {
    it(`steps aside for ${name}, and the parsed path hides what must be hidden`, () => {
      assert.equal(fast(text), undefined);
      let out: string;
      try {
        out = filterJsonResponseBody(Buffer.from(text), new Map([[1, 'tools']]), grants).toString();
      } catch {
        return; // not JSON: refused (502), never passed on
      }
      assert.doesNotMatch(out, /rm_rf/);
    });
  }

  it('steps aside for a name that is not valid UTF-8, and the parsed path re-encodes it', () => {
    const text = Buffer.concat([
      Buffer.from('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"ec'),
      Buffer.from([0xc0, 0xe8]), // an overlong encoding of "h"
      Buffer.from('o"},{"name":"rm_rf"}]}}'),
    ]);
    assert.equal(filterListFast(text, options()), undefined);
    const out = filterJsonResponseBody(text, new Map([[1, 'tools']]), grants);
    assert.ok(!out.includes(Buffer.from([0xc0, 0xe8])), 'the bad bytes are not passed on');
    assert.deepEqual(
      JSON.parse(out.toString()).result.tools.map((t: { name: string }) => t.name),
      ['echo'],
    );
  });

  it('decodes escaped names the way JSON.parse does', () => {
    const out = fast(
      '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"\\u0065cho"},{"name":"ech\\u006f2"}]}}',
    );
    assert.ok(out);
    assert.deepEqual(JSON.parse(out.toString()).result.tools, [{ name: 'echo' }]);
  });

  it('agrees with the parsed path on random lists (property)', () => {
    const name = fc.oneof(
      fc.constantFrom('echo', 'search_web', 'search_', 'rm_rf', 'greet', 'ECHO', 'echo ', 'é', '\u2028'),
      fc.string({ maxLength: 12 }),
    );
    const junk = fc.jsonValue({ maxDepth: 3 });
    const entry = fc.oneof(
      fc.record({ name, extra: junk }, { requiredKeys: ['name'] }),
      fc.record({ title: fc.string() }),
      fc.integer(),
      fc.constant(null),
      fc.record({ name: fc.integer() }),
    );
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 30 }),
        fc.constantFrom('tools', 'prompts'),
        fc.constantFrom(undefined, 0, 2),
        junk,
        (list, kind, indent, cursor) => {
          const message = { jsonrpc: '2.0', id: 1, result: { [kind]: list, nextCursor: cursor } };
          const text = JSON.stringify(message, null, indent);
          const out = fast(text, { '1': kind });
          if (out === undefined) return;
          const expected = filterListResult(kind, JSON.parse(text).result, grants);
          assert.deepEqual(JSON.parse(out.toString()).result, JSON.parse(JSON.stringify(expected)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('agrees with the parsed path whatever the member order and the other list beside it (property)', () => {
    const entry = fc.oneof(
      fc.record({ name: fc.constantFrom('echo', 'search_x', 'rm_rf', 'greet', 'secret') }),
      fc.record({ name: fc.string({ maxLength: 6 }), inputSchema: fc.jsonValue({ maxDepth: 2 }) }),
      fc.constant(null),
    );
    const member = fc.constantFrom('id', 'result', 'jsonrpc', 'x');
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 12 }),
        fc.array(entry, { maxLength: 12 }),
        fc.constantFrom('tools', 'prompts'),
        fc.shuffledSubarray(['tools', 'prompts', 'nextCursor'], { minLength: 1 }),
        fc.uniqueArray(member, { minLength: 2 }).filter((m) => m.includes('id') && m.includes('result')),
        (tools, prompts, kind, resultKeys, topKeys) => {
          const lists: Record<string, unknown> = { tools, prompts, nextCursor: 'c' };
          const result = Object.fromEntries(resultKeys.map((k) => [k, lists[k]]));
          const top: Record<string, unknown> = { id: 1, result, jsonrpc: '2.0', x: { tools: [] } };
          const text = JSON.stringify(Object.fromEntries(topKeys.map((k) => [k, top[k]])));
          const out = fast(text, { '1': kind });
          if (resultKeys.some((k) => k !== kind)) {
            assert.equal(out, undefined, "a cursor or another kind's list is the parsed path's");
            return;
          }
          assert.ok(out, 'a plain response takes the fast path');
          const expected = filterListResult(kind, result, grants);
          assert.deepEqual(JSON.parse(out.toString()).result, JSON.parse(JSON.stringify(expected)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never accepts a damaged body differently from the parsed path (property)', () => {
    const text = JSON.stringify({
      result: {
        tools: [{ name: 'echo', d: '{[' }, { name: 'rm_rf' }, { name: 'search_a', s: { a: [1] } }],
        prompts: [{ name: 'greet' }, { name: 'secret' }],
      },
      jsonrpc: '2.0',
      id: 1,
    });
    // Edits land anywhere, and often just after a bracket, comma or colon, where a duplicated key
    // or a stray token changes what a parser sees.
    const boundaries = [...text].flatMap((c, i) => ('{[,:'.includes(c) ? [i + 1] : []));
    const damage = fc.record({
      at: fc.oneof(fc.nat({ max: text.length - 1 }), fc.constantFrom(...boundaries)),
      cut: fc.constantFrom(0, 0, 1, 2, 3),
      insert: fc.oneof(
        fc.constantFrom('', '"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'x'),
        fc.constantFrom('"name":"rm_rf",', '"name":"secret",', '{"name":"rm_rf"},', '"tools":[],', '"id":2,'),
      ),
    });
    fc.assert(
      fc.property(
        fc.array(damage, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('tools', 'prompts'),
        (edits, kind) => {
          let damaged = text;
          for (const { at, cut, insert } of edits)
            damaged = damaged.slice(0, at) + insert + damaged.slice(at + cut);
          const out = fast(damaged, { '1': kind });
          if (out === undefined || out.toString() === damaged) return;
          // The scanner removed entries: then the body was JSON and the result is the parsed path's.
          let parsed: { result?: unknown };
          try {
            parsed = JSON.parse(damaged);
          } catch {
            // Not JSON. If what is left parses (the damage was in a removed entry), it lists only
            // allowed entries; if it does not, every client refuses the whole body.
            let left: { result?: Record<string, { name?: unknown }[]> };
            try {
              left = JSON.parse(out.toString());
            } catch {
              return;
            }
            const keep = kind === 'tools' ? grants.tool : grants.prompt;
            for (const e of left.result?.[kind] ?? []) assert.ok(keep(String(e.name)), String(e.name));
            return;
          }
          const expected = filterListResult(kind, parsed.result, grants);
          assert.deepEqual(JSON.parse(out.toString()).result, JSON.parse(JSON.stringify(expected)));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

/**
 * The one-pass list path of response matching (src/integrity/list-match.ts, policy/list-scan.ts):
 * a large tools/list or prompts/list response is validated, matched, filtered and given the
 * client's id back without being parsed whole. Each attack on what it reads has a named test; the
 * property tests hold it to the parsed path (same output) and to JSON.parse (same refusals).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import type { Grants } from '../../../src/policy/grants.ts';
import { UNREADABLE } from '../../../src/policy/unreadable.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import type { Plan, Untagged } from '../../../src/integrity/request-tag.ts';
import { createMatchRewrite, exchangeIds, signedIds } from '../../../src/integrity/match.ts';
import type { Filters, ResponseIds } from '../../../src/integrity/match.ts';
import { matchListResponse, NOT_JSON } from '../../../src/integrity/list-match.ts';
import { restoreIds } from '../../../src/integrity/restore.ts';
import { filterJsonResponseBody } from '../../../src/policy/filter-list.ts';
import { lockfileOf } from '../../../src/pinning/lockfile.ts';
import { pinningFor } from '../../../src/pinning/pins.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 3));
const half = compileGrants({ allow: ['echo*'], prompts: ['echo*'], resources: [] });
const every = compileGrants({ allow: ['*'], prompts: ['*'], resources: [] });
const refused = (err: unknown) => isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL';

/** ~120 bytes of description: 40 tools make a body well past the list path's threshold. */
const PAD =
  'Reads the thing and answers with what it found there; long enough to look like a real tool. '.repeat(1);
function tool(name: string, extra = ''): string {
  return `{"name":${JSON.stringify(name)},"description":${JSON.stringify(PAD)},"inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}${extra}}`;
}
function toolsOf(count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(tool(i % 2 === 0 ? `echo_${i}` : `secret_${i}`));
  return out;
}
const TOOLS = toolsOf(40);
const listText = (entries: readonly string[]) => `[${entries.join(',')}]`;

/** One exchange with one request of `plan`. */
function exchange(plan: Plan = 'tools', grants: Grants = half, pins?: Filters['pins']) {
  const tag = tagger.tag('key-a', 'list-1', plan);
  const ids = exchangeIds(new Map<string, Untagged>([[tag, { clientId: 'list-1', plan }]]));
  return { tag, ids, rewrite: createMatchRewrite(ids, { grants, tasks: undefined, pins }) };
}

/** The parsed path of match.ts (the reference): parse, restore the id, filter by the plan. */
function parsedPath(text: string, ids: ResponseIds, grants: Grants): Buffer {
  const restored = restoreIds(text, JSON.parse(text), ids);
  assert.ok(restored !== undefined);
  const out = Buffer.from(restored.text);
  return restored.plans === undefined ? out : filterJsonResponseBody(out, restored.plans, grants);
}
const idFirst = (id: string, list = listText(TOOLS), kind = 'tools') =>
  `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"${kind}":${list},"note":"c2"}}`;
const idLast = (id: string, list = listText(TOOLS)) =>
  `{"result":{"tools":${list}},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`;

/** Whether two views share any byte of memory. */
const overlaps = (a: Uint8Array, b: Uint8Array) =>
  a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.length && b.byteOffset < a.byteOffset + a.length;

/** The output through the list path, checked to take that path (the parsed path gives the same). */
function viaList(text: (tag: string) => string, grants: Grants = half, plan: Plan = 'tools'): string {
  const a = exchange(plan, grants);
  const body = Buffer.from(text(a.tag));
  assert.ok(body.length >= 4096, 'the body is large enough for the list path');
  const pieces = matchListResponse(body, a.ids, { grants, tasks: undefined });
  assert.ok(Array.isArray(pieces), 'the list path answered');
  for (const piece of pieces) assert.ok(!overlaps(piece, body), 'no piece views the body');
  const direct = Buffer.concat(pieces);
  const b = exchange(plan, grants);
  const reference = parsedPath(text(b.tag), b.ids, grants);
  assert.deepEqual(JSON.parse(direct.toString()), JSON.parse(reference.toString()));
  return direct.toString();
}

const names = (out: string | Buffer) =>
  (JSON.parse(out.toString()) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name);

describe('list path: filtering and the client id', () => {
  it('keeps the allowed entries byte for byte and restores the id, id first or last', () => {
    const kept = TOOLS.filter((t) => t.includes('"echo_'));
    assert.equal(
      viaList((tag) => idFirst(tag)),
      `{"jsonrpc":"2.0","id":"list-1","result":{"tools":${listText(kept)},"note":"c2"}}`,
    );
    assert.equal(
      viaList((tag) => idLast(tag)),
      `{"result":{"tools":${listText(kept)}},"jsonrpc":"2.0","id":"list-1"}`,
    );
  });

  it('an allow * key gets the whole list with only the id changed', () => {
    assert.equal(
      viaList((tag) => idFirst(tag), every),
      idFirst('list-1'),
    );
  });

  it("answers a remembered catalogue with views of the memo's copy, never copying the body", () => {
    // Allowed entries in runs (four echo_, then four secret_): each run of the body is one view.
    const runs = toolsOf(40).map((_, i) => tool(Math.floor(i / 4) % 2 === 0 ? `echo_${i}` : `secret_${i}`));
    const text = (tag: string) => idFirst(tag, listText(runs));
    for (let round = 0; round < 3; round++) {
      const a = exchange('tools', half);
      const body = Buffer.from(text(a.tag));
      const pieces = matchListResponse(body, a.ids, { grants: half, tasks: undefined });
      assert.ok(Array.isArray(pieces));
      const out = Buffer.concat(pieces).toString();
      assert.equal(names(out).length, 20);
      assert.ok(!out.includes('secret_'));
      assert.equal(JSON.parse(out).id, 'list-1');
      if (round === 0) assert.equal(pieces.length, 1, 'a body scanned afresh is copied out whole');
      else {
        // Before the id, the id, from there to the end of the first of five runs, a comma and a view
        // for each later run, and from the list's `]` on.
        assert.equal(pieces.length, 12, 'views of the remembered copy');
        for (const piece of pieces) assert.ok(!overlaps(piece, body));
      }
    }
  });

  it("judges a remembered catalogue once per key's grants, and each grants apart", () => {
    const counting = () => {
      const seen = { calls: 0 };
      const grants: Grants = { ...half, tool: (name) => (seen.calls++, half.tool(name)) };
      return { seen, grants };
    };
    const catalogue = toolsOf(40).map((t) => t.replace('"description":', '"description":"once",\n"d":'));
    const text = (tag: string) => idLast(tag, listText(catalogue));
    const a = counting();
    const b = counting();
    for (const { grants } of [a, a, b, a, b]) {
      const x = exchange('tools', grants);
      const out = matchListResponse(Buffer.from(text(x.tag)), x.ids, { grants, tasks: undefined });
      assert.ok(Array.isArray(out));
      const shown = names(Buffer.concat(out));
      assert.equal(shown.length, 20);
      assert.ok(shown.every((n) => n.startsWith('echo_')));
    }
    assert.equal(a.seen.calls, 40, 'each entry judged once for the first grants');
    assert.equal(b.seen.calls, 40, 'and once for the second');
  });

  it('filters prompts/list by the prompt grants', () => {
    const out = viaList((tag) => idFirst(tag, listText(TOOLS), 'prompts'), half, 'prompts');
    const prompts = (JSON.parse(out) as { result: { prompts: { name: string }[] } }).result.prompts;
    assert.equal(prompts.length, 20);
    assert.ok(prompts.every((p) => p.name.startsWith('echo_')));
  });

  it('drops entries that are not objects with a string name (fail closed)', () => {
    const odd = [...TOOLS, '"echo_str"', '{"name":7}', '{"title":"echo_none"}', 'null', '[]'];
    assert.equal(names(viaList((tag) => idFirst(tag, listText(odd)))).length, 20);
  });

  it('a number a double cannot hold reaches the client as the upstream wrote it', () => {
    const big = tool(
      'echo_big',
      ',"default":123456789012345678901234567890,"f":1.0,"z":-0,"e":1e400,"s":1E-7',
    );
    assert.ok(viaList((tag) => idFirst(tag, listText([...TOOLS, big]))).includes(big), 'copied exactly');
    const { tag, rewrite } = exchange();
    assert.ok(
      rewrite
        .json(Buffer.from(idLast(tag, listText([...TOOLS, big]))))
        .toString()
        .includes(big),
    );
  });

  it('restores the id over SSE, for a POST stream and a GET stream replay', () => {
    const { tag, rewrite } = exchange();
    const sse = rewrite.sse();
    const event = Buffer.concat([...sse.push(Buffer.from(`id: 1\ndata: ${idFirst(tag)}\n\n`)), ...sse.end()]);
    const data = /^data: (.*)$/m.exec(event.toString())![1]!;
    assert.equal(names(data).length, 20);
    assert.equal((JSON.parse(data) as { id: string }).id, 'list-1');
    const stream = createMatchRewrite(signedIds(tagger, 'key-a'), { grants: half, tasks: undefined }).sse();
    const replayed = tagger.tag('key-a', 9, 'tools');
    const out = Buffer.concat([
      ...stream.push(Buffer.from(`data: ${idLast(replayed)}\n\n`)),
      ...stream.end(),
    ]);
    assert.equal((JSON.parse(/^data: (.*)$/m.exec(out.toString())![1]!) as { id: number }).id, 9);
  });

  it('judges each entry against the pins when pinning is on, on the bytes the client gets', () => {
    const entries = TOOLS.map((t) => JSON.parse(t) as Record<string, unknown>);
    const lock = lockfileOf({ tools: entries, prompts: [] });
    const pinning = pinningFor(lock, 'hide', () => {});
    // echo_0 changed since it was pinned: hidden; the other echo tools pass.
    const changed = TOOLS.map((t) => (t.includes('"echo_0"') ? t.replace('the thing', 'another thing') : t));
    const { tag, rewrite } = exchange('tools', every, pinning.forList());
    const out = rewrite.json(Buffer.from(idFirst(tag, listText(changed))));
    assert.deepEqual(
      names(out),
      entries.map((e) => e.name as string).filter((n) => n !== 'echo_0'),
    );
    assert.equal(pinning.callable('tools', 'echo_0'), false);
  });

  it('judges a remembered catalogue against the pins every time, never by a verdict kept without them', () => {
    const entries = TOOLS.map((t) => JSON.parse(t) as Record<string, unknown>);
    const changed = TOOLS.map((t) => (t.includes('"echo_2"') ? t.replace('the thing', 'another thing') : t));
    const pinnedAsServed = lockfileOf({ tools: changed.map((t) => JSON.parse(t)), prompts: [] });
    const pinnedBefore = lockfileOf({ tools: entries, prompts: [] });
    const ask = (pins?: Filters['pins']) => {
      const { tag, rewrite } = exchange('tools', half, pins);
      return names(rewrite.json(Buffer.from(idLast(tag, listText(changed)))));
    };
    const echo = entries.map((e) => e.name as string).filter((n) => n.startsWith('echo_'));
    // Without pins the list path remembers what these grants keep of the catalogue ...
    assert.deepEqual(ask(), echo);
    assert.deepEqual(ask(), echo);
    // ... which never stands in for pins: under the same grants, a lockfile pinned before echo_2
    // changed hides it, one pinned as served does not.
    const before = () => pinningFor(pinnedBefore, 'hide', () => {}).forList();
    assert.deepEqual(
      ask(before()),
      echo.filter((n) => n !== 'echo_2'),
    );
    assert.deepEqual(ask(pinningFor(pinnedAsServed, 'hide', () => {}).forList()), echo);
    assert.deepEqual(
      ask(before()),
      echo.filter((n) => n !== 'echo_2'),
    );
    assert.deepEqual(ask(), echo);
  });
});

describe('list path: attacks on what it reads', () => {
  it('forged ids: a tag of no request of this exchange, another key, or the client id is refused', () => {
    const { rewrite } = exchange();
    for (const id of [
      tagger.tag('key-a', 'list-1', 'tools'),
      tagger.tag('key-b', 'list-1', 'tools'),
      'list-1',
    ]) {
      assert.throws(() => rewrite.json(Buffer.from(idFirst(id))), refused, id);
    }
    const sse = exchange().rewrite.sse();
    const event = Buffer.concat(sse.push(Buffer.from(`data: ${idFirst('list-1')}\n\n`)));
    assert.equal(event.toString(), `data: ${UNREADABLE}\n\n`);
    // (The stream then ends owing its request an error: the refused event answered nothing.)
    assert.match(Buffer.concat(sse.end()).toString(), /^data: \{"jsonrpc":"2.0","id":"list-1","error"/);
  });

  it('a request is answered once: a second list event with the same tag is refused', () => {
    const { tag, rewrite } = exchange();
    const sse = rewrite.sse();
    const out = Buffer.concat([
      ...sse.push(Buffer.from(`data: ${idFirst(tag)}\n\ndata: ${idFirst(tag)}\n\n`)),
      ...sse.end(),
    ]).toString();
    const events = out.split('\n\n').filter((e) => e !== '');
    assert.equal(names(events[0]!.slice(6)).length, 20);
    assert.equal(events[1], `data: ${UNREADABLE}`);
  });

  it('duplicate top-level ids are refused; a duplicate result reaches the client filtered, once', () => {
    const a = exchange();
    const twoIds = `{"jsonrpc":"2.0","id":${JSON.stringify(a.tag)},"id":"x","result":{"tools":${listText(TOOLS)}}}`;
    assert.throws(() => a.rewrite.json(Buffer.from(twoIds)), refused);
    const b = exchange();
    const decoy = listText(TOOLS.filter((t) => t.includes('"echo_')));
    const twoResults = `{"jsonrpc":"2.0","id":${JSON.stringify(b.tag)},"result":{"tools":${decoy}},"result":{"tools":${listText(TOOLS)}}}`;
    const out = b.rewrite.json(Buffer.from(twoResults)).toString();
    assert.equal(out.split('"result"').length, 2, 'one result');
    assert.ok(!out.includes('secret_'), 'no denied tool in any copy');
  });

  it('a second tools array (plain or escaped key) cannot smuggle denied tools', () => {
    for (const key of ['tools', 't\\u006fols']) {
      const { tag, rewrite } = exchange();
      const allowed = listText(TOOLS.filter((t) => t.includes('"echo_')));
      const body = `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"tools":${allowed},"${key}":${listText(TOOLS)}}}`;
      const out = rewrite.json(Buffer.from(body)).toString();
      assert.ok(!out.includes('secret_'), key);
      assert.equal(names(out).length, 20);
    }
  });

  it('escaped key names are read as JSON.parse reads them ("\\u006eame", "\\u0069d")', () => {
    const hidden = '{"\\u006eame":"secret_hidden","description":"x"}';
    const shown = '{"\\u006eame":"echo_escaped","description":"x"}';
    const out = viaList(
      (tag) =>
        `{"jsonrpc":"2.0","\\u0069d":${JSON.stringify(tag)},"result":{"tools":${listText([...TOOLS, hidden, shown])}}}`,
    );
    assert.ok(!out.includes('secret_hidden'));
    assert.ok(out.includes(shown), 'an allowed entry keeps its bytes, escapes and all');
    assert.ok(out.includes('"\\u0069d":"list-1"'));
    // Through the relay's rewrite too: the list is not re-serialised (which would unescape keys).
    const { tag, rewrite } = exchange();
    const body = `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"tools":${listText([...TOOLS, shown])}}}`;
    assert.ok(rewrite.json(Buffer.from(body)).toString().includes(shown));
  });

  it('an entry naming itself twice (one name escaped) is judged by the name a client reads last, not passed raw', () => {
    const twice = '{"name":"echo_decoy","\\u006eame":"secret_real"}';
    const { tag, rewrite } = exchange();
    const out = rewrite.json(Buffer.from(idFirst(tag, listText([...TOOLS, twice])))).toString();
    assert.ok(!out.includes('secret_real'));
    assert.ok(!out.includes('echo_decoy'));
  });

  it('an escaped name value is judged decoded and passed with its escapes', () => {
    const escaped = '{"name":"\\u0065cho_esc","description":"x"}';
    const denied = '{"name":"\\u0073ecret_esc","description":"x"}';
    const out = viaList((tag) => idFirst(tag, listText([...TOOLS, escaped, denied])));
    assert.ok(out.includes(escaped));
    assert.ok(!out.includes('ecret_esc'));
  });

  it('a subscription id in result._meta is left to the parsed path, which translates it', () => {
    const { tag, rewrite } = exchange();
    const body = `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"_meta":{"io.modelcontextprotocol/subscriptionId":${JSON.stringify(tag)}},"tools":${listText(TOOLS)}}}`;
    const out = JSON.parse(rewrite.json(Buffer.from(body)).toString()) as {
      result: { _meta: Record<string, unknown> };
    };
    assert.equal(out.result._meta['io.modelcontextprotocol/subscriptionId'], 'list-1');
  });

  it('a body with a byte order mark is left to the parsed path, as before', () => {
    const { tag, rewrite, ids } = exchange();
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(idFirst(tag))]);
    const none = { name: (id: string) => ids.name(id), answer: () => assert.fail('answered') };
    assert.equal(matchListResponse(body, none, { grants: half, tasks: undefined }), undefined);
    assert.equal(names(rewrite.json(body)).length, 20);
  });

  it('nesting past the depth limit is left to the parsed path (filtered all the same)', () => {
    const deep = tool('echo_deep', `,"x":${'['.repeat(70)}${']'.repeat(70)}`);
    const { tag, rewrite, ids } = exchange();
    const body = Buffer.from(idFirst(tag, listText([...TOOLS, deep])));
    assert.equal(
      matchListResponse(
        body,
        { name: (id) => ids.name(id), answer: () => assert.fail('answered') },
        { grants: half, tasks: undefined },
      ),
      undefined,
    );
    assert.equal(names(rewrite.json(body)).length, 21);
  });

  it('refuses a body that is not JSON anywhere, even inside a value no rule reads', () => {
    const bad = [
      (t: string) => idFirst(t).replace('"type":"string"', '"type":"str\ning"'), // raw control character
      (t: string) => idFirst(t).replace('"type":"string"', '"type":"str\\xing"'), // unknown escape
      (t: string) => idFirst(t).replace('"type":"string"', '"type":tru'), // broken literal
      (t: string) => idFirst(t).replace('"type":"string"', '"type":01'), // leading zero
      (t: string) => idFirst(t).replace('"type":"string"', '"type":/*"*/"string"'), // a comment
      (t: string) => idFirst(t).replace('}}}', '}},}'), // trailing comma
      (t: string) => idFirst(t).replace('"properties":{', '"properties":['), // mismatched bracket
      (t: string) => `${idFirst(t)} x`, // trailing bytes
    ];
    for (const [k, make] of bad.entries()) {
      const { tag, rewrite } = exchange();
      const body = make(tag);
      assert.throws(() => JSON.parse(body), SyntaxError, `case ${k} is not JSON`);
      assert.throws(() => rewrite.json(Buffer.from(body)), refused, `case ${k}`);
    }
    const { tag, rewrite } = exchange();
    const body = Buffer.from(idFirst(tag));
    body[body.indexOf('Reads')] = 0xff; // invalid UTF-8 in a description
    assert.throws(() => rewrite.json(body), refused);
  });

  it('property: on mutated bodies it refuses exactly what strict UTF-8 + JSON.parse refuses', () => {
    const numbers = tool('echo_n', ',"n":[0,-1,2.5,1e3,-0.25E-2,true,false,null,{"a":[]}]');
    const base = Buffer.from(idFirst('x', listText([...TOOLS.slice(0, 30), numbers])));
    const alphabet = Buffer.from('{}[]",:\\ 0123456789-+.eEtrufalsn\x01\t\n\xff');
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    let valid = 0;
    for (let round = 0; round < 3000; round++) {
      const body = Buffer.from(base);
      for (let m = 1 + rand(3); m > 0; m--) body[rand(body.length)] = alphabet[rand(alphabet.length)]!;
      let parses = true;
      try {
        JSON.parse(decoder.decode(body));
      } catch {
        parses = false;
      }
      const ids: ResponseIds = { answer: () => undefined, name: () => undefined };
      const out = matchListResponse(body, ids, { grants: half, tasks: undefined });
      assert.equal(out === NOT_JSON, !parses, body.toString('latin1'));
      if (parses) valid++;
    }
    assert.ok(valid > 100, `enough mutants stay JSON (${valid})`);
  });
});

/**
 * The memo of scanned list responses (src/policy/list-scan-memo.ts): a body that is a remembered one
 * with another string id is answered without a scan, and every other body gets exactly the answer
 * of a fresh scan (list-scan.ts), whatever differs and wherever.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NOT_JSON, OTHER, scanListResponse } from '../../../src/policy/list-scan.ts';
import type { ScannedList } from '../../../src/policy/list-scan.ts';
import type { MemoScan } from '../../../src/policy/list-scan-memo.ts';
import {
  clearListScanMemo,
  MEMO_ENTRIES,
  memoHits,
  scanListResponseMemo,
} from '../../../src/policy/list-scan-memo.ts';

const PAD = 'Reads the thing and answers with what it found there; long enough to look like a real tool.';
const TOOLS = Array.from(
  { length: 40 },
  (_, i) => `{"name":"${i % 2 === 0 ? 'echo' : 'secret'}_${i}","description":"${PAD}"}`,
).join(',');
const idFirst = (id: string, tools = TOOLS) =>
  `{"jsonrpc":"2.0","id":${id},"result":{"tools":[${tools}],"note":"c2"}}`;
const idLast = (id: string, tools = TOOLS) => `{"result":{"tools":[${tools}]},"jsonrpc":"2.0","id":${id}}`;

/** What a scan says, without the names cache a reader fills. */
function plain(scan: ReturnType<typeof scanListResponse>) {
  if (scan === OTHER || scan === NOT_JSON) return scan;
  const list = (l: ScannedList | undefined) => l && { open: l.open, end: l.end, items: [...l.items] };
  return { idStart: scan.idStart, idEnd: scan.idEnd, tools: list(scan.tools), prompts: list(scan.prompts) };
}

/**
 * The memo's answer in `body`'s positions: its scan indexes its source (a remembered copy that
 * differs from `body` only in the id, checked here), so what follows the id moves by the ids'
 * difference in length.
 */
function inBody(body: Buffer, answer: ReturnType<typeof scanListResponseMemo>) {
  if (answer === OTHER || answer === NOT_JSON) return answer;
  const { scan, source } = answer;
  if (source === body) {
    assert.equal(answer.idStart, scan.idStart);
    assert.equal(answer.idEnd, scan.idEnd);
    return scan;
  }
  assert.equal(answer.idStart, scan.idStart, 'the bytes before the id are the same');
  assert.ok(source.subarray(0, scan.idStart).equals(body.subarray(0, answer.idStart)));
  assert.ok(source.subarray(scan.idEnd).equals(body.subarray(answer.idEnd)), 'the bytes after the id');
  assert.deepEqual(plain(scan), plain(scanListResponse(source)), "the scan is the copy's own");
  const shift = answer.idEnd - scan.idEnd;
  const moved = (l: ScannedList | undefined) =>
    l && {
      open: l.open + shift,
      end: l.end + shift,
      items: l.items.map((p) => (p === -1 || p < scan.idEnd ? p : p + shift)),
      names: l.names,
    };
  const list = (l: ScannedList | undefined) => (l === undefined || l.open < scan.idEnd ? l : moved(l));
  return {
    idStart: answer.idStart,
    idEnd: answer.idEnd,
    tools: list(scan.tools),
    prompts: list(scan.prompts),
  };
}

/** The memo's answer for `body`, checked to be a fresh scan's; returns whether the memo answered. */
function check(body: Buffer): boolean {
  const before = memoHits();
  const answer = scanListResponseMemo(body);
  const label = body.toString('latin1').slice(0, 120);
  assert.deepEqual(plain(inBody(body, answer)), plain(scanListResponse(body)), label);
  const hit = memoHits() > before;
  assert.equal(answer !== OTHER && answer !== NOT_JSON && answer.source !== body, hit, label);
  return hit;
}

describe('list scan memo', () => {
  beforeEach(() => clearListScanMemo());

  it('answers a remembered body with another string id, shifting what follows a longer or shorter id', () => {
    for (const text of [idFirst, idLast]) {
      clearListScanMemo();
      assert.equal(check(Buffer.from(text('"tag-000001"'))), false, 'the first body is scanned');
      assert.equal(check(Buffer.from(text('"tag-000002"'))), true, 'same length');
      assert.equal(check(Buffer.from(text('"a-much-longer-tag-000003"'))), true, 'longer');
      assert.equal(check(Buffer.from(text('"t"'))), true, 'shorter');
      assert.equal(check(Buffer.from(text('""'))), true, 'empty');
      assert.equal(check(Buffer.from(text('"\\u0074ag-\\"é😀"'))), true, 'escapes and UTF-8');
    }
  });

  it('scans again when anything but the id differs', () => {
    check(Buffer.from(idFirst('"tag-1"')));
    const others = [
      idFirst('"tag-2"', TOOLS.replace('echo_0', 'echo_X')),
      idFirst('"tag-2"', TOOLS.replace('secret_1', 'echo_01')),
      idFirst('"tag-2"').replace('"c2"', '"c3"'),
      `${idFirst('"tag-2"')} `,
      ` ${idFirst('"tag-2"')}`,
      idFirst('"tag-2"').replace('"jsonrpc"', '"jsonrpx"'),
    ];
    for (const text of others) assert.equal(check(Buffer.from(text)), false, text.slice(0, 60));
  });

  it('refuses through the scan an id that is not a whole, valid JSON string', () => {
    const good = Buffer.from(idFirst('"tag-1"'));
    check(good);
    const cases: Buffer[] = [
      Buffer.from(idFirst('7')),
      Buffer.from(idFirst('null')),
      Buffer.from(idFirst('"tag\u0001"')),
      Buffer.from(idFirst('"tag\n"')),
      Buffer.from(idFirst('"tag\\x"')),
      Buffer.from(idFirst('"tag\\u12"')),
      Buffer.from(idFirst('"tag\\"')),
      Buffer.from(idFirst('"tag-1" "x"')),
      Buffer.from(idFirst('"tag-1","id":"tag-2"')),
      Buffer.concat([
        good.subarray(0, good.indexOf('tag-1')),
        Buffer.from([0xff]),
        good.subarray(good.indexOf('tag-1')),
      ]),
      Buffer.concat([
        good.subarray(0, good.indexOf('tag-1')),
        Buffer.from([0xed, 0xa0, 0x80]),
        good.subarray(good.indexOf('tag-1')),
      ]),
      good.subarray(0, good.length - 1),
    ];
    for (const body of cases) assert.equal(check(body), false, body.toString('latin1').slice(0, 60));
    assert.equal(scanListResponseMemo(cases[2]!), NOT_JSON);
    assert.equal(scanListResponseMemo(cases[0]!), OTHER);
  });

  it('keeps its own copy: bytes changed in the scanned buffer later are not taken as remembered', () => {
    const body = Buffer.from(idFirst('"tag-1"'));
    check(body);
    // The buffer is reused for another body that differs in one name (as a pooled read buffer would be).
    const at = body.indexOf('secret_1');
    body.write('echo_001', at);
    assert.equal(check(body), false);
    const { scan, source } = scanListResponseMemo(Buffer.from(body)) as MemoScan;
    const second = scan.tools!.items[6]!;
    assert.equal(source.subarray(second, second + 20).toString(), '"echo_001","descript');
  });

  it(`remembers ${MEMO_ENTRIES} bodies, the most recently used kept`, () => {
    const bodies = Array.from({ length: MEMO_ENTRIES + 1 }, (_, k) =>
      idFirst('"t"', TOOLS.replace('echo_0', `echo_${'y'.repeat(k)}`)),
    );
    for (const text of bodies) check(Buffer.from(text));
    assert.equal(check(Buffer.from(bodies[0]!.replace('"t"', '"u"'))), false, 'the oldest was let go');
    assert.equal(check(Buffer.from(bodies[MEMO_ENTRIES]!.replace('"t"', '"u"'))), true);
  });

  it('property: after any remembered body, any body gets the answer of a fresh scan', () => {
    const ids = fc.constantFrom('"a"', '"tag-0001"', '"a-longer-tag-0002"', '7', '"\\u0061"', '""');
    const mutation = fc.tuple(fc.nat(), fc.nat({ max: 3 }), fc.uint8Array({ maxLength: 3 }));
    let hits = 0;
    fc.assert(
      fc.property(
        fc.boolean(),
        ids,
        ids,
        fc.option(mutation, { nil: undefined, freq: 2 }),
        (first, remembered, id, hurt) => {
          const text = first ? idFirst : idLast;
          scanListResponseMemo(Buffer.from(text(remembered)));
          let body = Buffer.from(text(id));
          if (hurt !== undefined) {
            const [at, cut, bytes] = hurt;
            const k = at % body.length;
            body = Buffer.concat([body.subarray(0, k), bytes, body.subarray(Math.min(body.length, k + cut))]);
          }
          if (check(body)) hits++;
        },
      ),
      { seed: 0x5eed15, numRuns: 400 },
    );
    assert.ok(hits > 100, `enough bodies are answered by the memo (${hits})`);
  });
});

/**
 * Review (fuzzresp): a differential fuzzer of the response side. A hostile upstream answers a key
 * allowed one tool, prompt, resource and template (test/helpers/response-fuzz.ts writes the answers
 * from a seeded plan); the client reads what it receives as the SDK, an LF-only client and the WHATWG
 * rules do. Invariants for every case: no reader sees a hidden name or URI, no response under an id
 * the client did not send (or twice), every request is answered (a response or an error), and it has
 * exactly one audit line whose status and outcome are what the client got.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import {
  Dice,
  KINDS,
  MARK,
  allowedEntry,
  answerId,
  arr,
  hiddenEntry,
  jsonStrings,
  obj,
  readLfOnly,
  readSdk,
  readWhatwg,
  rng,
  str,
} from '../helpers/response-fuzz.ts';
import type { Kind, Reading } from '../helpers/response-fuzz.ts';

const KEY = mintKey(randomBytes(32));
const OTHER = mintKey(randomBytes(32));

/** How the upstream answers the next request: given the tags it received (in order). */
type Answer = (tags: string[], res: ServerResponse) => void;

interface Sent {
  readonly id: unknown;
  readonly kind: Kind | undefined;
}

interface Plan {
  status: number;
  headers: Record<string, string>;
  bytes: Buffer;
  pieces: 'whole' | 'cuts' | 'bytes';
  notes: string[];
  /** The upstream's connection is cut after this many bytes of the body. */
  cutAt?: number;
}

describe('review fuzzresp: the response side, fuzzed', () => {
  let http: HttpServer;
  let gateway: TestGateway;
  let answer: Answer = (_tags, res) => void res.writeHead(500).end();
  let answerGet: (res: ServerResponse) => void = (res) => void res.writeHead(405).end();
  /** What each tag of this key's answered requests asked (a GET stream may replay their answers). */
  const tagAsked = new Map<string, Sent>();
  /** Every id this key has sent: a replayed answer on a GET stream carries one of them. */
  const everSent = new Set<unknown>();
  /** How often each mutation ran, and each status the client got (FUZZRESP_STATS prints it). */
  const tally = new Map<string, number>();
  const pastTags: string[] = [];
  /** Tags of the other key's requests: an honest upstream answering another session with them. */
  const otherTags: string[] = [];

  before(async () => {
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'GET') return void answerGet(res);
        const body = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
        const tags = (Array.isArray(body) ? body : [body])
          .map((m) => (m as { id?: unknown }).id)
          .filter((id): id is string => typeof id === 'string');
        if (tags.length === 0) return void res.writeHead(202).end();
        answer(tags, res);
        pastTags.push(...tags);
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp
auth:
  session_secret: "${'f'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: fuzz
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [echo]
    prompts: [greet]
    resources: ["file:///pub/*"]
  - label: other
    hash: "sha256:${sha256Hex(OTHER)}"
    allow: ["*"]
    prompts: ["*"]
    resources: ["*"]
`);
  });
  after(async () => {
    await gateway.close(200);
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });

  /** The result a request of `kind` is answered with (a tools/call: text content), mutated. */
  function result(d: Dice, kind: Kind | undefined, odd: boolean, notes: string[]): string {
    if (kind === undefined) return '{"content":[{"type":"text","text":"ok"}]}';
    const items = [allowedEntry(d, kind, odd)];
    // Past 4 KiB the byte paths read the list (fast-list.ts, list-scan.ts, list-match.ts).
    if (d.chance(0.25)) {
      notes.push('large list');
      const pad = 'd'.repeat(300 + d.int(600));
      for (let i = 0, n = 6 + d.int(10); i < n; i++)
        items.push(allowedEntry(d, kind, odd).replace(/}$/, `,"description":"${pad}"}`));
    }
    if (d.chance(0.8)) {
      const h = hiddenEntry(d, kind, odd);
      notes.push(`hidden entry: ${h.how}`);
      items.splice(d.int(items.length + 1), 0, h.text);
    }
    const listKey = d.chance(0.15) ? str(d, kind.list, 1) : JSON.stringify(kind.list);
    const members: [string, string][] = [[listKey, arr(d, odd, items)]];
    // (A read result's other members are no list a client reads: only its contents are judged.)
    const roll = kind.list === 'contents' ? 9 : d.int(10);
    if (roll === 0) {
      notes.push('list repeated');
      const again = arr(d, odd, [hiddenEntry(d, kind, odd).text]);
      members.splice(d.int(2), 0, [JSON.stringify(kind.list), again]);
    } else if (roll === 1) {
      notes.push('case-variant list beside');
      members.push([
        JSON.stringify(kind.list[0]!.toUpperCase() + kind.list.slice(1)),
        arr(d, odd, [hiddenEntry(d, kind, odd).text]),
      ]);
    } else if (roll === 2) {
      const other = d.pick(KINDS.filter((k) => k !== kind && k.list !== 'contents'));
      notes.push(`another list beside: ${other.list}`);
      members.push([JSON.stringify(other.list), arr(d, odd, [hiddenEntry(d, other, odd).text])]);
    } else if (roll === 3) {
      notes.push('nextCursor');
      members.push(['"nextCursor"', JSON.stringify(`after:${kind.hidden}`)]);
    }
    return obj(d, odd, members);
  }

  /**
   * One response message for `tag`, its id perhaps hostile. `replay`: on a GET stream, where any tag
   * signed for the key passes, filtered by its own plan (another request's tag would carry a result
   * its plan does not filter: reported, left), so only the other key's tags are tried.
   */
  function response(d: Dice, tag: string, sent: Sent, odd: boolean, notes: string[], replay = false): string {
    const id = d.chance(0.05)
      ? { text: JSON.stringify(d.pick(otherTags)), how: "the other key's tag" }
      : d.chance(0.3) && !replay
        ? answerId(d, tag, pastTags, sent.id)
        : { text: JSON.stringify(tag), how: 'tag' };
    if (id.how !== 'tag') notes.push(`id: ${id.how}`);
    const members: [string, string][] = [
      ['"jsonrpc"', '"2.0"'],
      ['"id"', id.text],
      ['"result"', result(d, sent.kind, odd, notes)],
    ];
    const roll = d.int(14);
    if (roll === 0) {
      notes.push('id repeated');
      members.splice(d.int(3), 0, ['"id"', d.pick([JSON.stringify(tag), '"x"', '1', 'null'])]);
    } else if (roll === 1) {
      notes.push('result repeated');
      members.splice(d.int(3), 0, ['"result"', result(d, sent.kind, odd, notes)]);
    } else if (roll === 2) {
      notes.push('ID beside');
      members.push(['"ID"', JSON.stringify(tag)]);
    } else if (roll === 3) {
      notes.push('escaped member keys');
      members[1] = [str(d, 'id', 1), id.text];
      members[2] = [str(d, 'result', 1), members[2]![1]];
    }
    if (d.chance(0.3)) members.reverse();
    return obj(d, odd, members);
  }

  /** Messages the upstream sends beside the answer: about hidden things, or another request's. */
  function extra(d: Dice, notes: string[]): string {
    const resources = KINDS[2]!;
    const choices: [string, () => string][] = [
      [
        'updated hidden',
        () =>
          `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":${str(d, resources.hidden, 0.5)}}}`,
      ],
      [
        'updated hidden URI beside',
        () =>
          `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///pub/a.txt","URI":"${resources.hidden}"}}`,
      ],
      [
        'updated repeated uri',
        () =>
          `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"${resources.hidden}","uri":"file:///pub/a.txt"}}`,
      ],
      [
        'updated allowed',
        () =>
          '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///pub/a.txt"}}',
      ],
      ['list_changed', () => '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}'],
      [
        'progress',
        () =>
          '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t-other","progress":1}}',
      ],
      [
        'log',
        () => '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}',
      ],
      ['ping request', () => '{"jsonrpc":"2.0","id":"srv-1","method":"ping"}'],
      [
        'stale answer',
        () =>
          `{"jsonrpc":"2.0","id":${JSON.stringify(pastTags.length > 0 ? d.pick(pastTags) : 'zz')},"result":{}}`,
      ],
      ['null-id error', () => '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}'],
      [
        "the other key's answer",
        () =>
          `{"jsonrpc":"2.0","id":${JSON.stringify(d.pick(otherTags))},"result":{"tools":[{"name":"secret_tool"}]}}`,
      ],
      [
        "status of a task not the key's",
        () =>
          `{"jsonrpc":"2.0","method":${d.pick(['"notifications/tasks/status"', '"notifications/tasks"'])},"params":{${str(d, 'taskId', 0.3)}:${str(d, 'secret-task', 0.3)},"status":"completed"}}`,
      ],
      [
        'status with a taskId variant',
        () =>
          '{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{"taskId":"t-1","TaskId":"secret-task","status":"working"}}',
      ],
      [
        'elicitation about an unknown task',
        () =>
          '{"jsonrpc":"2.0","id":"srv-2","method":"elicitation/create","params":{"message":"ok?","requestedSchema":{"type":"object"},"_meta":{"io.modelcontextprotocol/related-task":{"taskId":"t-9"}}}}',
      ],
    ];
    const [how, make] = d.pick(choices);
    notes.push(`extra: ${how}`);
    return make();
  }

  function plan(d: Dice, tags: string[], sent: readonly Sent[]): Plan {
    const notes: string[] = [];
    const odd = d.chance(0.3);
    const messages: string[] = [];
    tags.forEach((tag, i) => {
      const s = sent[i] ?? { id: undefined, kind: undefined };
      if (d.chance(0.03)) return void notes.push('one left unanswered');
      messages.push(response(d, tag, s, odd, notes));
      if (d.chance(0.05)) {
        notes.push('answered twice');
        messages.push(response(d, tag, s, odd, notes));
      }
    });
    const extras = d.chance(0.35) ? 1 + d.int(2) : 0;
    for (let i = 0; i < extras; i++) messages.splice(d.int(messages.length + 1), 0, extra(d, notes));
    const sse = d.chance(0.55);
    const headers: Record<string, string> = {};
    let bytes: Buffer;
    if (sse) {
      headers['content-type'] = d.pick([
        'text/event-stream',
        'text/event-stream',
        'text/event-stream; charset=utf-8',
        'Text/Event-Stream',
        'text/event-stream;charset=UTF-8',
      ]);
      bytes = sseBytes(d, messages, notes);
    } else {
      headers['content-type'] = d.pick([
        'application/json',
        'application/json',
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/json;charset="utf-8"',
        'application/json; profile=x',
      ]);
      const batch = messages.length !== 1 || d.chance(0.1);
      if (batch) notes.push('JSON batch');
      let text = batch ? arr(d, odd, messages) : (messages[0] ?? '');
      if (odd) text = `${ws(d)}${text}${ws(d)}`;
      bytes = Buffer.from(text);
    }
    notes.unshift(sse ? `SSE ${headers['content-type']}` : `JSON ${headers['content-type']}`);
    if (d.chance(0.05)) {
      headers['content-encoding'] = d.pick(['gzip', 'identity', 'GZIP', 'br']);
      notes.push(`content-encoding ${headers['content-encoding']}`);
    }
    let cutAt: number | undefined;
    // Framing faults: each must end in a clear error for the client and a true audit line.
    if (d.chance(0.12)) {
      const fault = d.int(8);
      if (fault === 0) bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
      else if (fault === 1) cutAt = d.int(bytes.length);
      else if (fault === 2) bytes = Buffer.concat([bytes, Buffer.from(sse ? 'data: not json\n\n' : ' x')]);
      else if (fault === 3)
        bytes = Buffer.from(bytes.toString('latin1').replace('"2.0"', '"2.\xff0"'), 'latin1');
      else if (fault === 4)
        headers['content-type'] = d.pick(['text/plain', 'application/json; charset=iso-8859-1', 'text/html']);
      else if (fault === 5) delete headers['content-type'];
      else if (fault === 6)
        headers['content-type'] = sse
          ? 'text/event-stream; charset=utf-16'
          : 'application/json; charset=utf-16';
      else bytes = Buffer.concat([bytes, Buffer.from(sse ? 'data: {"jsonrpc":"2.0"' : '')]);
      notes.push(
        `fault: ${['BOM', 'connection cut', 'garbage after', 'bad UTF-8', 'other type', 'no type', 'utf-16 charset', 'unfinished'][fault]}`,
      );
    }
    if (d.chance(0.4) && cutAt === undefined) headers['content-length'] = String(bytes.length);
    const status = d.chance(0.9) ? 200 : d.pick([400, 500, 202, 204, 404, 429]);
    if (status !== 200) notes.push(`status ${status}`);
    if (status === 204) delete headers['content-length'];
    const pieces = d.chance(0.5) ? 'whole' : d.chance(0.8) ? 'cuts' : 'bytes';
    return { status, headers, bytes, pieces, notes, ...(cutAt === undefined ? {} : { cutAt }) };
  }

  function ws(d: Dice): string {
    return d.pick(['', ' ', '\n', '\r\n\t']);
  }

  function sseBytes(d: Dice, given: readonly string[], notes: string[]): Buffer {
    let messages = given;
    // Several messages batched in one event (a JSON array as its data).
    if (messages.length > 1 && d.chance(0.15)) {
      notes.push('batched in one event');
      const at = d.int(messages.length - 1);
      const k = 2 + d.int(messages.length - at - 1);
      messages = [
        ...messages.slice(0, at),
        arr(d, false, messages.slice(at, at + k)),
        ...messages.slice(at + k),
      ];
    }
    const endings = d.pick([['\n'], ['\r\n'], ['\r'], ['\n', '\r\n', '\r']]);
    if (endings.length > 1) notes.push('mixed line ends');
    else notes.push(`line end ${JSON.stringify(endings[0])}`);
    const eol = () => d.pick(endings);
    let out = '';
    if (d.chance(0.05)) {
      out += '\ufeff';
      notes.push('BOM');
    }
    if (d.chance(0.2)) out += `: primed${eol()}${eol()}`;
    for (const m of messages) {
      const lines: string[] = [];
      if (d.chance(0.15)) lines.push(': comment');
      if (d.chance(0.2)) lines.push(`id: ${d.pick(['e1', '', '42'])}`);
      if (d.chance(0.2)) {
        lines.push(d.pick(['event: message', 'event:message', 'event: other']));
        // The SDK client reads only `message` events: the upstream hid this one from it itself.
        if (lines.at(-1) === 'event: other') notes.push('event: other');
      }
      if (d.chance(0.1)) lines.push(d.pick(['retry: 100', 'retry:5']));
      const sep = d.chance(0.2) ? 'data:' : 'data: ';
      for (const line of m.split(/\r\n|\r|\n/)) lines.push(`${sep}${line}`);
      if (d.chance(0.1)) lines.splice(d.int(lines.length + 1), 0, ': interleaved comment');
      for (const line of lines) out += `${line}${eol()}`;
      out += eol();
    }
    return Buffer.from(out);
  }

  async function write(res: ServerResponse, p: Plan, d: Dice) {
    res.writeHead(p.status, p.headers);
    if (p.cutAt !== undefined) {
      res.write(p.bytes.subarray(0, p.cutAt));
      await sleep(2);
      return void res.destroy();
    }
    if (p.pieces === 'whole') return void res.end(p.bytes);
    const cuts =
      p.pieces === 'bytes'
        ? [...Array(p.bytes.length).keys()].slice(1)
        : [...new Set([...Array(1 + d.int(6))].map(() => 1 + d.int(Math.max(1, p.bytes.length - 1))))].sort(
            (a, b) => a - b,
          );
    let from = 0;
    for (const at of [...cuts, p.bytes.length]) {
      if (res.destroyed) return;
      res.write(p.bytes.subarray(from, at));
      from = at;
      await (p.pieces === 'bytes' ? new Promise((r) => setImmediate(r)) : sleep(1));
    }
    res.end();
  }

  /**
   * A GET stream case: the upstream replays answers to this key's earlier requests (each must be
   * filtered by the plan its tag carries), answers under the other key's tags, and notifications.
   */
  async function runGetCase(d: Dice, seed: number): Promise<string[]> {
    const notes: string[] = ['GET stream'];
    const odd = d.chance(0.3);
    const messages: string[] = [];
    const asked = [...tagAsked.entries()];
    for (let i = 0, n = 1 + d.int(4); i < n; i++) {
      const roll = d.int(3);
      if (roll === 0 && asked.length > 0) {
        const [tag, s] = d.pick(asked);
        notes.push(`replay of ${s.kind?.method ?? 'tools/call'}`);
        messages.push(response(d, tag, s, odd, notes, true));
      } else if (roll === 1) {
        notes.push("the other key's list");
        messages.push(response(d, d.pick(otherTags), { id: 1, kind: KINDS[0] }, odd, notes, true));
      } else messages.push(extra(d, notes));
    }
    const body = sseBytes(d, messages, notes);
    answerGet = (res) =>
      void write(
        res,
        {
          status: 200,
          headers: { 'content-type': 'text/event-stream' },
          bytes: body,
          pieces: d.chance(0.5) ? 'whole' : 'cuts',
          notes,
        },
        d,
      );
    const linesBefore = gateway.auditLines.length;
    const broken: string[] = [];
    let status = 0;
    let bytes = Buffer.alloc(0);
    try {
      const res = await fetch(gateway.mcpUrl, {
        signal: AbortSignal.timeout(5000),
        headers: { accept: 'text/event-stream', authorization: `Bearer ${KEY}` },
      });
      status = res.status;
      bytes = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      broken.push(`GET failed: ${(e as Error).message}`);
    }
    if (process.env.FUZZRESP_DUMP)
      console.log(
        seed,
        status,
        JSON.stringify(bytes.toString('latin1')),
        JSON.stringify(body.toString('latin1')),
      );
    const readings = [readSdk(bytes), readWhatwg(bytes), readLfOnly(bytes)];
    for (const r of readings) {
      for (const payload of r.payloads) {
        let value: unknown;
        try {
          value = JSON.parse(payload);
        } catch {
          broken.push(`${r.reader}: unparseable ${JSON.stringify(payload.slice(0, 80))}`);
          continue;
        }
        if (jsonStrings(payload).some((x) => x.includes(MARK)))
          broken.push(`${r.reader}: hidden name shown: ${payload.slice(0, 300)}`);
        for (const m of Array.isArray(value) ? value : [value]) {
          const msg = m as Record<string, unknown>;
          if (typeof m !== 'object' || m === null || 'method' in msg) continue;
          if (msg.id === null && 'error' in msg) continue;
          if (!everSent.has(msg.id))
            broken.push(`${r.reader}: answer under an id never sent: ${JSON.stringify(msg.id)}`);
        }
      }
    }
    if (
      !notes.includes('event: other') &&
      JSON.stringify(readings[0]!.payloads) !== JSON.stringify(readings[2]!.payloads)
    )
      broken.push(
        `readers differ: ${JSON.stringify(readings[0]!.payloads)} vs ${JSON.stringify(readings[2]!.payloads)}`,
      );
    for (let i = 0; i < 500 && gateway.auditLines.length === linesBefore; i++) await sleep(2);
    const lines = gateway.auditLines.slice(linesBefore);
    if (lines.length !== 1) broken.push(`${lines.length} audit lines`);
    else if (lines[0]!.status !== status)
      broken.push(`audit status ${String(lines[0]!.status)}, client got ${status}`);
    for (const n of notes) tally.set(n, (tally.get(n) ?? 0) + 1);
    return broken.length === 0 ? [] : [`case ${seed} [${notes.join('; ')}]`, ...broken];
  }

  /** One case: returns the invariants it broke (empty when it held), with its plan's notes. */
  async function runCase(seed: number): Promise<string[]> {
    const d = new Dice(rng(seed));
    // (The roll is taken whatever the state, so FUZZRESP_ONLY replays a case's choices.)
    if (d.chance(0.15) && tagAsked.size > 0) return runGetCase(d, seed);
    const count = d.chance(0.15) ? 2 : 1;
    const sent: Sent[] = [];
    for (let i = 0; i < count; i++) {
      const kind = d.chance(0.85) ? d.pick(KINDS) : undefined;
      const id = d.pick([7, 0, 9007199254740991, 'c-1', 'é"\\x', `s${seed}-${i}`, -3]);
      if (sent.some((s) => s.id === id)) continue;
      sent.push({ id, kind });
    }
    const requests = sent.map((s) => ({
      jsonrpc: '2.0',
      id: s.id,
      method: s.kind?.method ?? 'tools/call',
      ...(s.kind === undefined ? { params: { name: 'echo', arguments: {} } } : {}),
      ...(s.kind?.method === 'resources/read' ? { params: { uri: 'file:///pub/a.txt' } } : {}),
    }));
    const batch = requests.length > 1;
    let notes: string[] = [];
    const cutUpstream = () => notes.includes('fault: connection cut');
    let sentBytes: Buffer | undefined;
    for (const s of sent) everSent.add(s.id);
    answer = (tags, res) => {
      tags.forEach((t, i) => {
        const s = sent[i];
        if (s !== undefined) tagAsked.set(t, s);
      });
      const p = plan(d, tags, sent);
      notes = p.notes;
      sentBytes = p.bytes;
      void write(res, p, d);
    };
    const linesBefore = gateway.auditLines.length;
    const broken: string[] = [];
    let status = 0;
    let type = '';
    let bytes = Buffer.alloc(0);
    try {
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        signal: AbortSignal.timeout(5000),
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${KEY}`,
        },
        body: JSON.stringify(batch ? requests : requests[0]),
      });
      status = res.status;
      type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      bytes = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      // An upstream cut mid-stream is passed on as a cut (reported, left): the client saw the failure.
      if (!(cutUpstream() && (e as Error).message === 'terminated'))
        broken.push(`no answer: ${(e as Error).message}`);
    }
    if (process.env.FUZZRESP_DUMP)
      console.log(
        seed,
        status,
        type,
        JSON.stringify(bytes.toString('latin1')),
        JSON.stringify(sentBytes?.toString('latin1')),
      );
    const readings: Reading[] = [];
    if (type === 'text/event-stream') readings.push(readSdk(bytes), readWhatwg(bytes), readLfOnly(bytes));
    else if (type === 'application/json') {
      readings.push({ reader: 'json', payloads: [new TextDecoder().decode(bytes)] });
      readings.push({ reader: 'json-strict', payloads: [bytes.toString('utf8')] });
    } else if (broken.length === 0) broken.push(`content type ${type || '(none)'} with status ${status}`);

    let upstreamError = false;
    let answeredAll = true;
    for (const r of readings) {
      const answered = new Map<unknown, number>();
      let nullError = false;
      for (const payload of r.payloads) {
        let value: unknown;
        try {
          value = JSON.parse(payload);
        } catch {
          broken.push(`${r.reader}: unparseable ${JSON.stringify(payload.slice(0, 80))}`);
          continue;
        }
        if (jsonStrings(payload).some((s) => s.includes(MARK)))
          broken.push(`${r.reader}: hidden name shown: ${payload.slice(0, 300)}`);
        for (const m of Array.isArray(value) ? value : [value]) {
          if (typeof m !== 'object' || m === null) {
            broken.push(`${r.reader}: not a message ${JSON.stringify(m)}`);
            continue;
          }
          const msg = m as Record<string, unknown>;
          if ('method' in msg) continue;
          const isError = 'error' in msg;
          if (isError && (msg.error as { code?: unknown }).code === -32002) upstreamError = true;
          if (msg.id === null && isError) {
            nullError = true;
            continue;
          }
          const match = sent.find((s) => s.id === msg.id);
          if (match === undefined)
            broken.push(`${r.reader}: answer under an id never sent: ${JSON.stringify(msg.id)}`);
          else answered.set(match.id, (answered.get(match.id) ?? 0) + 1);
        }
      }
      for (const s of sent) {
        const n = answered.get(s.id) ?? 0;
        if (n > 1) broken.push(`${r.reader}: id ${JSON.stringify(s.id)} answered ${n} times`);
        // Left unanswered by the upstream on a stream with events: left as it ended (match.ts #owed).
        const excused =
          (r.reader === 'sdk' && notes.includes('event: other')) ||
          (type === 'text/event-stream' && notes.includes('one left unanswered')) ||
          // An error status is the answer the SDK client reads (it never reads the body then); a
          // body holding only a server request passes under it (reported, left).
          (status >= 400 && notes.includes('one left unanswered')) ||
          (cutUpstream() && type === 'text/event-stream');
        if (n === 0 && !nullError && !excused) {
          answeredAll = false;
          broken.push(`${r.reader}: id ${JSON.stringify(s.id)} never answered (status ${status})`);
        }
      }
    }
    const [first, ...rest] = readings.filter((r) => r.reader !== 'json-strict');
    for (const r of rest)
      if (
        first !== undefined &&
        !notes.includes('event: other') &&
        JSON.stringify(r.payloads) !== JSON.stringify(first.payloads)
      )
        broken.push(
          `readers differ: ${first.reader} ${JSON.stringify(first.payloads)} vs ${r.reader} ${JSON.stringify(r.payloads)}`,
        );

    // The audit line: written when the response finished, maybe just after the client read it.
    for (let i = 0; i < 500 && gateway.auditLines.length === linesBefore; i++) await sleep(2);
    const lines = gateway.auditLines.slice(linesBefore);
    if (lines.length !== 1) broken.push(`${lines.length} audit lines`);
    const line = lines[0];
    if (process.env.FUZZRESP_DUMP) console.log(JSON.stringify(line));
    if (line !== undefined) {
      if (line.status !== status) broken.push(`audit status ${String(line.status)}, client got ${status}`);
      // (An error status whose body the gateway could not read keeps its status, the upstream's
      // answer, and gets the gateway's error body: the line says allow with that status.)
      if (upstreamError && line.decision !== 'upstream_error' && (status < 300 || status === 502))
        broken.push(`client got an upstream error, audit says ${String(line.decision)}`);
      if (!batch && line.rpc_id !== sent[0]!.id) broken.push(`audit rpc_id ${JSON.stringify(line.rpc_id)}`);
      if (
        line.decision === 'allow' &&
        !answeredAll &&
        !notes.includes('one left unanswered') &&
        !cutUpstream()
      )
        broken.push('audit allow, a request unanswered');
    }
    for (const n of notes) tally.set(n, (tally.get(n) ?? 0) + 1);
    tally.set(`client status ${status}`, (tally.get(`client status ${status}`) ?? 0) + 1);
    return broken.length === 0 ? [] : [`case ${seed} [${notes.join('; ')}]`, ...broken];
  }

  /** Asks `method` with id `id`; the upstream answers with `type` and the bytes `body(tag)` writes. */
  async function ask(method: string, id: unknown, type: string, body: (tag: string) => string | Buffer) {
    everSent.add(id);
    answer = (tags, res) => void res.writeHead(200, { 'content-type': type }).end(body(tags[0]!));
    const before = gateway.auditLines.length;
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      signal: AbortSignal.timeout(5000),
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${KEY}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id,
        method,
        ...(method === 'tools/call' ? { params: { name: 'echo', arguments: {} } } : {}),
      }),
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    for (let i = 0; i < 500 && gateway.auditLines.length === before; i++) await sleep(2);
    return {
      status: res.status,
      bytes,
      text: bytes.toString('utf8'),
      lines: gateway.auditLines.slice(before),
    };
  }

  /** The messages an LF-only client (mcp-go, the Go SDK) reads in an SSE body; unparseable data as a string. */
  function lfOnlyMessages(bytes: Buffer): unknown[] {
    return readLfOnly(bytes).payloads.map((p) => {
      try {
        return JSON.parse(p) as unknown;
      } catch {
        return p;
      }
    });
  }

  const answerTo = (tag: string) => `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"content":[]}}`;
  const progress = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}';

  it('hole: a list entry holding a case variant of its name or URI ("namE" after "name") showed a case-folding client the hidden one', async () => {
    // failed before: each list passed the entry whole; Go's encoding/json v1 reads the last key that
    // folds to the field, so its client listed secret_prompt, file:///secret/b.txt, ...
    const cases: [string, string, string][] = [
      ['prompts/list', 'prompts', '{"name":"greet","namE":"secret_prompt"}'],
      ['tools/list', 'tools', '{"name":"echo","inputSchema":{"type":"object"},"NAME":"secret_tool"}'],
      ['resources/list', 'resources', '{"uri":"file:///pub/a.txt","name":"a","URI":"file:///secret/b.txt"}'],
      [
        'resources/templates/list',
        'resourceTemplates',
        '{"uriTemplate":"file:///pub/{x}","name":"t","UriTemplate":"file:///secret/{x}"}',
      ],
    ];
    for (const [method, list, entry] of cases) {
      for (const type of ['application/json', 'text/event-stream']) {
        // Past 4 KiB too: the byte paths (fast-list.ts, list-scan.ts) read each entry's name alone.
        const filler = `{"name":"echo","description":"${'d'.repeat(5000)}","inputSchema":{"type":"object"}}`;
        const entries = list === 'tools' ? [filler, entry] : [entry];
        for (const all of [entries, [entry]]) {
          const json = (tag: string) =>
            `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"${list}":[${all.join(',')}]}}`;
          const got = await ask(method, 5, type, (tag) =>
            type === 'application/json' ? json(tag) : `data: ${json(tag)}\n\n`,
          );
          assert.equal(got.status, 200, got.text.slice(0, 200));
          assert.ok(got.text.includes('"id":5'), got.text.slice(0, 200));
          assert.ok(!got.text.includes(MARK), `${method} ${type}: ${got.text.slice(-300)}`);
        }
      }
    }
    // A resources/read result's contents are judged by their uri the same way.
    const read = await ask(
      'resources/read',
      6,
      'application/json',
      (tag) =>
        `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"contents":[{"uri":"file:///pub/a.txt","Uri":"file:///secret/b.txt","text":"x"}]}}`,
    );
    assert.ok(!read.text.includes(MARK), read.text);
  });

  it('hole: a block without data ended by lone CRs (": c\\r\\r") passed as it was: an LF-only client read the answer after it as part of the comment', async () => {
    // failed before: mcp-go and the Go SDK split lines at LF only, so `: primed\r\rdata: {answer}` was one
    // comment line to them, and the call was never answered (the gateway's own error after such a
    // block went the same way).
    for (const after of [(tag: string) => `data: ${answerTo(tag)}\n\n`, () => '']) {
      const got = await ask('tools/call', 8, 'text/event-stream', (tag) => `: primed\r\r${after(tag)}`);
      const read = lfOnlyMessages(got.bytes);
      assert.equal(read.length, 1, JSON.stringify(got.text));
      // The answer, or the gateway's error for the call the upstream left unanswered.
      assert.equal((read[0] as { id: unknown }).id, 8, JSON.stringify(got.text));
      assert.equal(got.lines.length, 1);
    }
  });

  it('hole: an event whose blank line was a lone CR after an LF ("data: x\\n\\r") passed as it was: an LF-only client joined the next event to it', async () => {
    // failed before: `\r` + `data: {answer}` is no blank line to an LF-only reader: it read the
    // notification and the answer as one data, not JSON, and the call was never answered.
    const got = await ask(
      'tools/call',
      9,
      'text/event-stream',
      (tag) => `data: ${progress}\n\rdata: ${answerTo(tag)}\n\n`,
    );
    const read = lfOnlyMessages(got.bytes);
    assert.equal(read.length, 2, JSON.stringify(got.text));
    assert.equal((read[1] as { id: unknown }).id, 9, JSON.stringify(got.text));
  });

  it('hole: a first event after a UTF-8 byte order mark passed with it when nothing in it changed: a client that keeps the BOM (mcp-go, the Go SDK) read no data field', async () => {
    // failed before: the gateway and the SDK drop the BOM and read the notification; a client reading
    // the bytes as they come saw a field named "\ufeffdata" and lost it (an answer is written again,
    // its id restored, so only an event passed as it was kept the BOM).
    const got = await ask('tools/call', 10, 'text/event-stream', (tag) =>
      Buffer.concat([
        Buffer.from([0xef, 0xbb, 0xbf]),
        Buffer.from(`data: ${progress}\n\ndata: ${answerTo(tag)}\n\n`),
      ]),
    );
    assert.equal(got.bytes[0], 0x64, JSON.stringify(got.text)); // `d`
    const read = lfOnlyMessages(got.bytes);
    assert.deepEqual(read, [JSON.parse(progress), { jsonrpc: '2.0', id: 10, result: { content: [] } }]);
  });

  it('hole: a stream whose only events were dropped (a hidden resource\u2019s update) counted as one with events: the unanswered call got no error, and its line said allow', async () => {
    // failed before: the gateway owes an error to a request left unanswered by a stream that ends
    // with no event (nothing to resume at), but counted the events it read, not those it sent: the
    // client got an empty stream, no answer and no error, and waited.
    const update =
      '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///secret/b.txt"}}';
    for (const prefix of ['', '\ufeff\ufeff']) {
      const got = await ask('tools/call', 11, 'text/event-stream', () => `${prefix}data: ${update}\n\n`);
      assert.ok(!got.text.includes(MARK), got.text);
      const read = readSdk(got.bytes).payloads.map(
        (p) => JSON.parse(p) as { id: unknown; error?: { code: number } },
      );
      assert.equal(read.length, 1, JSON.stringify(got.text));
      assert.equal(read[0]!.id, 11);
      assert.equal(read[0]!.error?.code, -32002);
      assert.equal(got.lines.length, 1);
      assert.equal(got.lines[0]!.decision, 'upstream_error');
    }
  });

  it('fuzz: seeded cases keep every invariant', async () => {
    const cases = Number(process.env.FUZZRESP_CASES ?? 1000);
    const base = Number(process.env.FUZZRESP_SEED ?? 20261204);
    // The other key's requests, answered as asked: their tags are what an upstream may cross.
    answer = (tags, res) =>
      void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(`{"jsonrpc":"2.0","id":${JSON.stringify(tags[0])},"result":{"tools":[]}}`);
    const otherBefore = gateway.auditLines.length;
    for (const id of [1, 2, 3]) {
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${OTHER}`,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }),
      });
      assert.equal(res.status, 200, await res.text());
    }
    otherTags.push(...pastTags.splice(-3));
    for (let i = 0; i < 500 && gateway.auditLines.length < otherBefore + 3; i++) await sleep(2);
    const failures: string[][] = [];
    const linesBefore = gateway.auditLines.length;
    const only = process.env.FUZZRESP_ONLY;
    for (let i = only ? Number(only) - base : 0; i < (only ? Number(only) - base + 1 : cases); i++) {
      const broken = await runCase(base + i);
      if (broken.length > 0) failures.push(broken);
    }
    await sleep(50);
    if (process.env.FUZZRESP_STATS)
      console.log(
        [...tally]
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${v}\t${k}`)
          .join('\n'),
      );
    const ran = only ? 1 : cases;
    assert.equal(gateway.auditLines.length - linesBefore, ran, 'one audit line per request, no more later');
    assert.deepEqual(failures.slice(0, 8), [], `${failures.length} of ${cases} cases failed`);
  });
});

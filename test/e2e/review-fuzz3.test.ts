/**
 * Review (fuzz3): the response fuzzer (test/helpers/response-fuzz.ts) extended to the older HTTP+SSE
 * transport and to the GET streams of Streamable HTTP sessions, resumed with `Last-Event-ID`.
 *
 * HTTP+SSE: a key's client holds one GET stream; it POSTs to its endpoint and the hostile upstream
 * answers on the stream, with ids as sent or not, answers under the tags of the same key's other
 * client, of another key, answered before, hidden entries in every spelling, every SSE framing.
 * Streamable HTTP: a key opens two sessions (and asks without one); each session's GET stream
 * replays, under event ids, answers to the requests of this session, the other session, the other
 * session's initialize, the stateless ones and another key's. Invariants: no reader (SDK, LF-only,
 * WHATWG) sees a hidden name or URI; no answer reaches a client under an id it did not send on that
 * session, nor twice; every request has one audit line that says what the client got.
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
import { openStream } from '../helpers/sse-stream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
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

const keys = `rate_limit:
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
`;

interface Sent {
  readonly id: unknown;
  readonly kind: Kind | undefined;
  /** A call of a tool the key may not use: the gateway answers it, the upstream never sees it. */
  readonly denied?: boolean;
}

const requestOf = (s: Sent) => ({
  jsonrpc: '2.0',
  id: s.id,
  method: s.kind?.method ?? 'tools/call',
  ...(s.kind === undefined ? { params: { name: s.denied ? 'forbidden_tool' : 'echo', arguments: {} } } : {}),
  ...(s.kind?.method === 'resources/read' ? { params: { uri: 'file:///pub/a.txt' } } : {}),
});

/** A result for `kind` (a tools/call: text content), a hidden entry in it most of the time. */
function result(d: Dice, kind: Kind | undefined, odd: boolean, notes: string[]): string {
  if (kind === undefined) return '{"content":[{"type":"text","text":"ok"}]}';
  const items = [allowedEntry(d, kind, odd)];
  if (d.chance(0.2)) {
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
  const members: [string, string][] = [
    [d.chance(0.15) ? str(d, kind.list, 1) : JSON.stringify(kind.list), arr(d, odd, items)],
  ];
  const roll = kind.list === 'contents' ? 9 : d.int(8);
  if (roll === 0) {
    notes.push('list repeated');
    members.splice(d.int(2), 0, [JSON.stringify(kind.list), arr(d, odd, [hiddenEntry(d, kind, odd).text])]);
  } else if (roll === 1) {
    const other = d.pick(KINDS.filter((k) => k !== kind && k.list !== 'contents'));
    notes.push(`another list beside: ${other.list}`);
    members.push([JSON.stringify(other.list), arr(d, odd, [hiddenEntry(d, other, odd).text])]);
  } else if (roll === 2) {
    notes.push('nextCursor');
    members.push(['"nextCursor"', JSON.stringify(`after:${kind.hidden}`)]);
  }
  return obj(d, odd, members);
}

/** One response message under the id text `id`, answering a request of `kind`. */
function response(d: Dice, id: string, kind: Kind | undefined, odd: boolean, notes: string[]): string {
  const members: [string, string][] = [
    ['"jsonrpc"', '"2.0"'],
    ['"id"', id],
    ['"result"', result(d, kind, odd, notes)],
  ];
  const roll = d.int(12);
  if (roll === 0) {
    notes.push('id repeated');
    members.splice(d.int(3), 0, ['"id"', d.pick([id, '"x"', '1', 'null'])]);
  } else if (roll === 1) {
    notes.push('result repeated');
    members.splice(d.int(3), 0, ['"result"', result(d, kind, odd, notes)]);
  } else if (roll === 2) {
    notes.push('escaped member keys');
    members[1] = [str(d, 'id', 1), id];
    members[2] = [str(d, 'result', 1), members[2]![1]];
  }
  if (d.chance(0.3)) members.reverse();
  return obj(d, odd, members);
}

/** A notification or server request about hidden things (or harmless). */
function extra(d: Dice, notes: string[]): string {
  const hidden = KINDS[2]!.hidden;
  const choices: [string, () => string][] = [
    [
      'updated hidden',
      () =>
        `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":${str(d, hidden, 0.5)}}}`,
    ],
    [
      'updated repeated uri',
      () =>
        `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"${hidden}","uri":"file:///pub/a.txt"}}`,
    ],
    [
      'updated allowed',
      () =>
        '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///pub/a.txt"}}',
    ],
    ['list_changed', () => '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}'],
    ['ping request', () => '{"jsonrpc":"2.0","id":"srv-1","method":"ping"}'],
    ['null-id error', () => '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}'],
    [
      "status of a task not the key's",
      () =>
        `{"jsonrpc":"2.0","method":"notifications/tasks/status","params":{${str(d, 'taskId', 0.3)}:${str(d, 'secret-task', 0.3)},"status":"completed"}}`,
    ],
  ];
  const [how, make] = d.pick(choices);
  notes.push(`extra: ${how}`);
  return make();
}

/** SSE bytes for `messages`, with every framing the spec allows; `ids` gives an event's `id:`. */
function sseBytes(d: Dice, messages: readonly string[], notes: string[], ids?: () => string | undefined) {
  let list = messages;
  if (list.length > 1 && d.chance(0.15)) {
    notes.push('batched in one event');
    const at = d.int(list.length - 1);
    const k = 2 + d.int(list.length - at - 1);
    list = [...list.slice(0, at), arr(d, false, list.slice(at, at + k)), ...list.slice(at + k)];
  }
  const endings = d.pick([['\n'], ['\r\n'], ['\r'], ['\n', '\r\n', '\r']]);
  notes.push(endings.length > 1 ? 'mixed line ends' : `line end ${JSON.stringify(endings[0])}`);
  const eol = () => d.pick(endings);
  let out = '';
  if (d.chance(0.2)) out += `: primed${eol()}${eol()}`;
  for (const m of list) {
    const lines: string[] = [];
    if (d.chance(0.15)) lines.push(': comment');
    // A priming event (SEP-1699): an id and no data, or empty data. No event to a client, but its
    // Last-Event-ID moves there.
    if (ids !== undefined && d.chance(0.15)) {
      notes.push('priming event');
      out += `id: ${ids()}${eol()}${d.pick(['', `data:${eol()}`, `data: ${eol()}`])}${eol()}`;
    }
    const id = ids?.();
    if (id !== undefined) lines.push(`id: ${id}`);
    else if (d.chance(0.2)) lines.push(`id: ${d.pick(['e1', '', '42'])}`);
    if (d.chance(0.3)) lines.push(d.pick(['event: message', 'event:message']));
    if (d.chance(0.1)) lines.push(d.pick(['retry: 100', 'retry:5']));
    const sep = d.chance(0.2) ? 'data:' : 'data: ';
    for (const line of m.split(/\r\n|\r|\n/)) lines.push(`${sep}${line}`);
    if (d.chance(0.1)) lines.splice(d.int(lines.length + 1), 0, ': interleaved comment');
    for (const line of lines) out += `${line}${eol()}`;
    out += eol();
  }
  // A lone CR ending the last line: the next event's LF would make it one blank line (CRLF), so
  // end the block with a full blank line the marker cannot join.
  return out + '\n\n';
}

/**
 * What every reader reads of `bytes`: no hidden name, JSON messages only, and answers only under
 * `allowed` ids (each at most once over `answered`, shared across the stream's cases).
 */
function check(bytes: Buffer, allowed: readonly unknown[], answered: Map<unknown, number>[]): string[] {
  const broken: string[] = [];
  const readings: Reading[] = [readSdk(bytes), readWhatwg(bytes), readLfOnly(bytes)];
  readings.forEach((r, i) => {
    const seen = (answered[i] ??= new Map());
    for (const payload of r.payloads) {
      let value: unknown;
      if (payload === '') continue; // (a priming event: no message)
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
        if (msg.id === null && 'error' in msg) continue;
        if (!allowed.includes(msg.id))
          broken.push(`${r.reader}: answer under an id never sent here: ${JSON.stringify(msg.id)}`);
        const n = (seen.get(msg.id) ?? 0) + 1;
        seen.set(msg.id, n);
        if (n > 1) broken.push(`${r.reader}: id ${JSON.stringify(msg.id)} answered ${n} times`);
      }
    }
  });
  if (JSON.stringify(readings[0]!.payloads) !== JSON.stringify(readings[2]!.payloads))
    broken.push(`readers differ: ${JSON.stringify(readings.map((r) => r.payloads))}`);
  return broken;
}

const marker = (m: string) =>
  `data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"${m}"}}\n\n`;

/** The client's stream from `from` up to the marker event (exclusive), once it has arrived. */
async function upTo(stream: OpenedStream, from: number, m: string): Promise<Buffer | undefined> {
  for (let i = 0; i < 2500; i++) {
    const raw = stream.raw();
    const at = raw.indexOf(m, from);
    if (at !== -1) return Buffer.from(raw.slice(from, raw.lastIndexOf('\n\n', at) + 2));
    await sleep(2);
  }
  return undefined;
}

async function waitLines(gateway: TestGateway, n: number): Promise<void> {
  for (let i = 0; i < 1000 && gateway.auditLines.length < n; i++) await sleep(2);
}

describe('review fuzz3: the HTTP+SSE transport, fuzzed', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let sid = 0;
  const opened: OpenedStream[] = [];

  before(async () => {
    upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S${++sid}`);
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
  transport: sse
auth:
  session_secret: "${'f'.repeat(40)}"
${keys}`);
  });
  after(async () => {
    for (const s of opened) s.close();
    await gateway.close(200);
    await upstream.close();
  });

  async function open(key: string) {
    const stream = await openStream(gateway.mcpUrl, key);
    opened.push(stream);
    const first = await stream.next();
    assert.equal(first.event, 'endpoint');
    return { stream, endpoint: new URL(first.data, gateway.url).href, up: upstream.streams.at(-1)! };
  }

  /** POSTs `body` to `endpoint` as `key`; gives the status and the tags the upstream received. */
  async function post(key: string, endpoint: string, body: unknown) {
    const before = upstream.posts.length;
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    await res.text();
    const got = upstream.posts.slice(before).flatMap((p) => {
      const v = JSON.parse(p.body) as unknown;
      return (Array.isArray(v) ? v : [v]).map((m) => (m as { id?: unknown }).id);
    });
    return { status: res.status, tags: got.filter((t): t is string => typeof t === 'string') };
  }

  it('fuzz: seeded cases keep every invariant on the HTTP+SSE transport', async () => {
    const cases = Number(process.env.FUZZ3_SSE_CASES ?? 300);
    const base = Number(process.env.FUZZ3_SEED ?? 20261204);
    const mine = await open(KEY);
    /** Where the client POSTs: the last endpoint its stream named. */
    let endpoint = mine.endpoint;
    let moved = 0;
    let upstreamEvents = 0;
    let clientEvents = 0;
    let injected = 0;
    const sibling = await open(KEY);
    const other = await open(OTHER);
    // Tags the upstream may cross: the same key's other client's, another key's.
    const siblingTags = (await post(KEY, sibling.endpoint, requestOf({ id: 0, kind: KINDS[0] }))).tags;
    const otherTags = (await post(OTHER, other.endpoint, requestOf({ id: 0, kind: KINDS[0] }))).tags;
    assert.equal(siblingTags.length, 1);
    assert.equal(otherTags.length, 1);
    const pastTags: string[] = [];
    const everSent: unknown[] = [];
    const kindOf = new Map<string, Kind | undefined>();
    const answered: Map<unknown, number>[] = [];
    const failures: string[][] = [];
    const tally = new Map<string, number>();
    let from = mine.stream.raw().length;
    for (let c = 0; c < cases; c++) {
      const seed = base + c;
      const d = new Dice(rng(seed));
      const notes: string[] = [];
      const sent: Sent[] = [];
      for (let i = 0, n = d.chance(0.2) ? 2 : 1; i < n; i++) {
        const denied = d.chance(0.1);
        sent.push({
          id: d.pick([`c${seed}-${i}`, seed * 10 + i]),
          kind: !denied && d.chance(0.85) ? d.pick(KINDS) : undefined,
          denied,
        });
        if (denied) notes.push('denied call');
      }
      const batch = sent.length > 1 && d.chance(0.5);
      const forwarded = batch && sent.some((s) => s.denied) ? [] : sent.filter((s) => !s.denied);
      // An old tag may be answered late (its first answer was dropped): any id this client sent.
      everSent.push(...sent.map((s) => s.id));
      const linesBefore = gateway.auditLines.length;
      const tags: string[] = [];
      const broken: string[] = [];
      for (const body of batch ? [sent.map(requestOf)] : sent.map(requestOf)) {
        const got = await post(KEY, endpoint, body);
        if (got.status !== 202) broken.push(`POST status ${got.status}`);
        tags.push(...got.tags);
      }
      const odd = d.chance(0.3);
      const messages: string[] = [];
      tags.forEach((tag, i) => {
        const s = forwarded[i]!;
        const id = d.chance(0.35)
          ? d.chance(0.5)
            ? { text: JSON.stringify(d.pick([...siblingTags, ...otherTags])), how: 'a crossing tag' }
            : // (Another of its tags would carry a result its plan does not filter: known, left.)
              answerId(d, tag, [], s.id)
          : { text: JSON.stringify(tag), how: 'tag' };
        if (id.how !== 'tag') notes.push(`id: ${id.how}`);
        messages.push(response(d, id.text, s.kind, odd, notes));
        if (d.chance(0.08)) {
          notes.push('answered twice');
          messages.push(response(d, JSON.stringify(tag), s.kind, odd, notes));
        }
      });
      if (d.chance(0.1) && pastTags.length > 0) {
        notes.push('an old answer again');
        const old = d.pick(pastTags);
        messages.push(response(d, JSON.stringify(old), kindOf.get(old), odd, notes));
      }
      for (let i = 0, n = d.chance(0.35) ? 1 + d.int(2) : 0; i < n; i++)
        messages.splice(d.int(messages.length + 1), 0, extra(d, notes));
      let bytes = Buffer.from(sseBytes(d, messages, notes));
      // The upstream names another endpoint for this stream (a new upstream session), now and then.
      if (d.chance(0.05)) {
        notes.push('new endpoint');
        const again = `event: endpoint\ndata: /legacy/messages?sid=M${++moved}\n\n`;
        bytes = d.chance(0.5)
          ? Buffer.concat([Buffer.from(again), bytes])
          : Buffer.concat([bytes, Buffer.from(again)]);
      }
      const m = `mark-${seed}`;
      const all = Buffer.concat([bytes, Buffer.from(marker(m))]);
      // A denied call POSTed while an upstream event is half written: the gateway's answer must go
      // between two whole events.
      const midway = d.chance(0.15) ? { id: `mid-${seed}`, kind: undefined, denied: true } : undefined;
      if (midway !== undefined) {
        notes.push('denied midway');
        everSent.push(midway.id);
      }
      if (d.chance(0.5) && midway === undefined) mine.up.res.write(all);
      else
        for (let at = 0; at < all.length;) {
          const next = Math.min(all.length, at + 1 + d.int(64));
          mine.up.res.write(all.subarray(at, next));
          if (at === 0 && midway !== undefined) {
            await sleep(2);
            const got = await post(KEY, endpoint, requestOf(midway));
            if (got.status !== 202) broken.push(`midway POST status ${got.status}`);
          }
          at = next;
          if (d.chance(0.3)) await sleep(1);
        }
      pastTags.push(...tags);
      tags.forEach((t, i) => kindOf.set(t, forwarded[i]?.kind));
      let seen = await upTo(mine.stream, from, m);
      if (seen === undefined) broken.push('marker never arrived');
      else {
        if (process.env.FUZZ3_DUMP)
          console.log(seed, JSON.stringify(seen.toString()), JSON.stringify(all.toString()));
        // Endpoint events: the gateway's own path, and where the client POSTs from now on.
        const endpoints = [...seen.toString().matchAll(/event: endpoint\ndata: ([^\n]*)\n\n/g)];
        for (const e of endpoints) {
          if (!e[1]!.startsWith(`${new URL(gateway.mcpUrl).pathname}?session=`))
            broken.push(`endpoint ${e[1]} is not the gateway's`);
          endpoint = new URL(e[1]!, gateway.url).href;
        }
        if (endpoints.length > 0)
          seen = Buffer.from(seen.toString().replace(/event: endpoint\ndata: [^\n]*\n\n/g, ''));
        broken.push(...check(seen, everSent, answered));
        // For the stream's line: each event the upstream sent (the marker's too) either reached the
        // client or was dropped; the gateway's answers to denied calls are its own.
        upstreamEvents += readWhatwg(all).payloads.length - endpoints.length;
        clientEvents += readWhatwg(seen).payloads.length + 1;
        injected += batch && sent.some((s) => s.denied) ? 1 : sent.filter((s) => s.denied).length;
        if (midway !== undefined) injected++;
        // The gateway's own answer to a denied call comes on the stream, once.
        const batchDenied = batch && sent.some((s) => s.denied);
        for (const s of midway === undefined ? sent : [...sent, midway])
          if ((s.denied || batchDenied) && answered[0]?.get(s.id) !== 1)
            broken.push(`denied ${JSON.stringify(s.id)} not answered`);
        from = mine.stream.raw().indexOf(m, from) + m.length;
      }
      const posts = (batch ? 1 : sent.length) + (midway === undefined ? 0 : 1);
      await waitLines(gateway, linesBefore + posts);
      const lines = gateway.auditLines.slice(linesBefore);
      if (lines.length !== posts) broken.push(`${lines.length} audit lines`);
      lines.forEach((line, i) => {
        // A batch holding a denied call is denied whole (ERR_BATCH_DENIED).
        const denied = batch ? i > 0 || sent.some((s) => s.denied) : (sent[i]?.denied ?? true);
        if (line.status !== 202 || line.decision !== (denied ? 'deny' : 'allow'))
          broken.push(`audit ${String(line.status)} ${String(line.decision)} ${String(line.reason)}`);
      });
      for (const n of notes) tally.set(n, (tally.get(n) ?? 0) + 1);
      if (broken.length > 0) failures.push([`case ${seed} [${notes.join('; ')}]`, ...broken]);
    }
    // The stream's own line, once it ends: it counts at least every event it dropped, and no more
    // than the upstream sent.
    const linesNow = gateway.auditLines.length;
    mine.stream.close();
    await waitLines(gateway, linesNow + 1);
    const line = gateway.auditLines
      .slice(linesNow)
      .find((l) => l.http_method === 'GET' && l.events_filtered !== undefined);
    const dropped = upstreamEvents - (clientEvents - injected);
    if (process.env.FUZZ3_DUMP) console.log(gateway.auditLines.slice(linesNow));
    assert.ok(line !== undefined, 'the stream has its line');
    const filtered = Number(line.events_filtered);
    assert.ok(
      filtered >= dropped && filtered <= upstreamEvents,
      `events_filtered ${filtered}, dropped ${dropped} of ${upstreamEvents}`,
    );
    if (process.env.FUZZ3_STATS)
      console.log(
        [...tally]
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${v}\t${k}`)
          .join('\n'),
      );
    assert.deepEqual(failures.slice(0, 6), [], `${failures.length} of ${cases} cases failed`);
  });
});

describe('review fuzz3: GET streams of Streamable HTTP sessions, resumed, fuzzed', () => {
  let http: HttpServer;
  let gateway: TestGateway;
  /** Every tag the upstream received: the upstream session it came in (none: stateless), its kind. */
  const tags = new Map<string, { session: string | undefined; kind: Kind | undefined; init: boolean }>();
  let sessions = 0;
  /** What the next GET writes, given its upstream session and the Last-Event-ID it was sent. */
  let onGet: (session: string, last: string | undefined, res: ServerResponse) => void = (_s, _l, res) =>
    void res.writeHead(405).end();
  /** The Last-Event-ID each GET reached the upstream with. */
  const lastSeen: (string | undefined)[] = [];

  before(async () => {
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const session = req.headers['mcp-session-id'] as string | undefined;
        if (req.method === 'GET') {
          const last = req.headers['last-event-id'] as string | undefined;
          lastSeen.push(last);
          return void onGet(session ?? '', last, res);
        }
        if (req.method === 'DELETE') return void res.writeHead(200).end();
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { id?: unknown; method?: string };
        if (typeof body.id !== 'string') return void res.writeHead(202).end();
        const init = body.method === 'initialize';
        const opened = init ? `up-${++sessions}` : session;
        const kind = KINDS.find((k) => k.method === body.method);
        tags.set(body.id, { session: opened, kind, init });
        res.writeHead(200, {
          'content-type': 'application/json',
          ...(init ? { 'mcp-session-id': opened as string } : {}),
        });
        const result = init
          ? { protocolVersion: '2025-11-25', capabilities: {}, serverInfo: { name: opened, version: '1' } }
          : kind === undefined
            ? { content: [] }
            : { [kind.list]: [] };
        res.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result }));
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp
auth:
  session_secret: "${'f'.repeat(40)}"
${keys}`);
  });
  after(async () => {
    await gateway.close(200);
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });

  const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

  async function post(key: string, session: string | undefined, body: unknown) {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        ...HEADERS,
        authorization: `Bearer ${key}`,
        ...(session === undefined ? {} : { 'mcp-session-id': session }),
      },
      body: JSON.stringify(body),
    });
    await res.arrayBuffer();
    return { status: res.status, session: res.headers.get('mcp-session-id') ?? undefined };
  }

  interface Client {
    readonly key: string;
    /** The gateway's session id, and the upstream's behind it. */
    readonly session: string;
    readonly upstream: string;
    /** Every id this client sent in its session, the initialize's too. */
    readonly sent: unknown[];
    /** The sealed event ids its GET streams carried, with the upstream id each stands for. */
    readonly events: [string, string][];
  }

  async function initialize(key: string, id: unknown): Promise<Client> {
    const got = await post(key, undefined, {
      jsonrpc: '2.0',
      id,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'f', version: '1' } },
    });
    assert.equal(got.status, 200);
    assert.ok(got.session !== undefined);
    await post(key, got.session, { jsonrpc: '2.0', method: 'notifications/initialized' });
    return { key, session: got.session, upstream: `up-${sessions}`, sent: [id], events: [] };
  }

  it('hole: a GET stream passed two answers to one request: the client got its id answered twice on the stream', async () => {
    // failed before: a GET stream took any tag signed for its session (step.ts SessionIds) or key
    // (response-ids.ts SignedIds) as often as the upstream sent it; the HTTP+SSE transport's stream
    // dropped a second copy, the POST exchange refused it, the GET stream passed both.
    const client = await initialize(KEY, 'twice-0');
    await post(KEY, client.session, requestOf({ id: 'twice-1', kind: KINDS[0] }));
    const tag = [...tags].find(([, t]) => t.session === client.upstream && !t.init)![0];
    const answer = `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"tools":[{"name":"echo"}]}}`;
    for (const session of [client.session, undefined]) {
      onGet = (_s, _l, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`id: t1\ndata: ${answer}\n\nid: t2\ndata: ${answer}\n\n`);
      };
      // Without a session, a stateless request's tag (signed for the key alone) is replayed.
      if (session === undefined) await post(KEY, undefined, requestOf({ id: 'twice-2', kind: KINDS[0] }));
      const stateless = [...tags].findLast(([, t]) => t.session === undefined)?.[0];
      const shown = session === undefined ? answer.replace(tag, stateless!) : answer;
      if (session === undefined)
        onGet = (_s, _l, res) => {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end(`id: t1\ndata: ${shown}\n\nid: t2\ndata: ${shown}\n\n`);
        };
      const before = gateway.auditLines.length;
      const res = await fetch(gateway.mcpUrl, {
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${KEY}`,
          ...(session === undefined ? {} : { 'mcp-session-id': session }),
        },
      });
      const bytes = Buffer.from(await res.arrayBuffer());
      const answers = readSdk(bytes)
        .payloads.map((p) => JSON.parse(p) as { id: unknown; result?: unknown })
        .filter((m) => m.result !== undefined);
      assert.deepEqual(
        answers.map((m) => m.id),
        [session === undefined ? 'twice-2' : 'twice-1'],
        bytes.toString(),
      );
      for (let i = 0; i < 500 && gateway.auditLines.length === before; i++) await sleep(2);
      assert.equal(gateway.auditLines.length - before, 1);
      assert.equal(gateway.auditLines[before]!.decision, 'upstream_error');
    }
  });

  it('fuzz: seeded cases keep every invariant on session GET streams', async () => {
    const cases = Number(process.env.FUZZ3_GET_CASES ?? 500);
    const base = Number(process.env.FUZZ3_SEED ?? 20261204);
    // Two clients of one key (each numbering from 0, as SDK clients do: a crossing answer shows by
    // its id only when ids differ, so each client's ids carry its name), and another key's.
    const a = await initialize(KEY, 'a-0');
    const b = await initialize(KEY, 'b-0');
    const o = await initialize(OTHER, 'o-0');
    const clients = [a, b];
    const failures: string[][] = [];
    const tally = new Map<string, number>();
    let n = 0;
    for (let c = 0; c < cases; c++) {
      const seed = base + c;
      const d = new Dice(rng(seed));
      const notes: string[] = [];
      const broken: string[] = [];
      // Some requests first: in either session, without one (stateless), or the other key's.
      for (let i = 0, k = d.int(3); i < k; i++) {
        const who = d.int(4);
        const client = who < 2 ? clients[who]! : who === 2 ? o : undefined;
        const s: Sent = {
          id: `${client === undefined ? 'x' : client.sent[0]}-${++n}`,
          kind: d.chance(0.8) ? d.pick(KINDS) : undefined,
        };
        const got = await post(client?.key ?? KEY, client?.session, requestOf(s));
        if (got.status !== 200) broken.push(`POST status ${got.status}`);
        client?.sent.push(s.id);
      }
      const mine = d.pick(clients);
      const all = [...tags.entries()];
      const odd = d.chance(0.3);
      const messages: string[] = [];
      for (let i = 0, k = 1 + d.int(4); i < k; i++) {
        const roll = d.int(5);
        if (roll === 4 || all.length === 0) {
          messages.push(extra(d, notes));
          continue;
        }
        const [tag, t] = d.pick(all);
        notes.push(
          `replay of ${t.init ? 'an initialize' : (t.kind?.method ?? 'tools/call')} ${t.session === mine.upstream ? 'of this session' : t.session === undefined ? 'stateless' : 'of another session'}`,
        );
        messages.push(
          t.init
            ? `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"${t.session}","version":"1"}}}`
            : response(d, JSON.stringify(tag), t.kind, odd, notes),
        );
      }
      let eventNo = 0;
      const upIds: string[] = [];
      const body = sseBytes(d, messages, notes, () => {
        const id = `ev-${seed}-${eventNo++}`;
        upIds.push(id);
        return id;
      });
      // Now and then a GET answered with a JSON body (no stream: the transport has none there).
      const json = d.chance(0.1) && messages.length > 0;
      if (json) notes.push('GET answered with JSON');
      onGet = (_s, _l, res) => {
        if (json) {
          res.writeHead(200, { 'content-type': 'application/json' });
          return void res.end(messages.length === 1 ? messages[0] : `[${messages.join(',')}]`);
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(body);
      };
      // Resumed, at an event a GET of this session or the other carried.
      const resumeFrom = d.chance(0.5) ? d.pick(clients).events : [];
      const resume = resumeFrom.length > 0 ? d.pick(resumeFrom) : undefined;
      if (resume)
        notes.push(`resumed at ${resumeFrom === mine.events ? 'its own' : 'the other'} session's event`);
      const linesBefore = gateway.auditLines.length;
      const seenBefore = lastSeen.length;
      let status = 0;
      let type = '';
      let bytes = Buffer.alloc(0);
      try {
        const res = await fetch(gateway.mcpUrl, {
          signal: AbortSignal.timeout(5000),
          headers: {
            accept: 'text/event-stream',
            authorization: `Bearer ${KEY}`,
            'mcp-session-id': mine.session,
            ...(resume ? { 'last-event-id': resume[0] } : {}),
          },
        });
        status = res.status;
        type = res.headers.get('content-type') ?? '';
        bytes = Buffer.from(await res.arrayBuffer());
      } catch (e) {
        broken.push(`GET failed: ${(e as Error).message}`);
      }
      if (status !== 200 && !json) broken.push(`GET status ${status}`);
      if (resume && lastSeen[seenBefore] !== resume[1])
        broken.push(`upstream resumed at ${String(lastSeen[seenBefore])}, client asked ${resume[1]}`);
      if (process.env.FUZZ3_DUMP) console.log(seed, JSON.stringify(bytes.toString()), JSON.stringify(body));
      if (!type.startsWith('text/event-stream')) {
        // Whatever the gateway made of it: its own error, or a body holding nothing hidden.
        if (bytes.toString().includes(MARK)) broken.push(`hidden name in ${type}: ${bytes.toString()}`);
        notes.push(`client got ${status} ${type}`);
        // A body the gateway passed holds messages like any event (CR and LF in JSON are whitespace).
        bytes =
          status === 200
            ? Buffer.from(`data: ${bytes.toString().replace(/[\r\n]/g, ' ')}\n\n`)
            : Buffer.alloc(0);
      }
      broken.push(...check(bytes, mine.sent, []));
      // An initialize answer names the session it opened: only this one's may pass here.
      for (const p of readSdk(bytes).payloads.filter((x) => x !== '')) {
        const name = (JSON.parse(p) as { result?: { serverInfo?: { name?: string } } }).result?.serverInfo
          ?.name;
        if (name !== undefined && name !== mine.upstream)
          broken.push(`the initialize of ${name} answered here`);
      }
      // The sealed event ids, in order, against the upstream's (only events that passed have one).
      const sealed = [...bytes.toString().matchAll(/^id: ?(.*)$/gm)].map((m) => m[1]!);
      // (A seal is the upstream id, a dot and 16 characters: event-ids.ts.)
      for (const s of sealed) {
        const up = s.slice(0, -17);
        if (upIds.includes(up)) mine.events.push([s, up]);
        else broken.push(`event id ${s} seals no id the upstream sent`);
      }
      for (let i = 0; i < 500 && gateway.auditLines.length === linesBefore; i++) await sleep(2);
      const lines = gateway.auditLines.slice(linesBefore);
      if (lines.length !== 1) broken.push(`${lines.length} audit lines`);
      else if (lines[0]!.status !== status)
        broken.push(`audit status ${String(lines[0]!.status)}, client got ${status}`);
      for (const x of notes) tally.set(x, (tally.get(x) ?? 0) + 1);
      if (broken.length > 0) failures.push([`case ${seed} [${notes.join('; ')}]`, ...broken]);
    }
    if (process.env.FUZZ3_STATS)
      console.log(
        [...tally]
          .sort((p, q) => q[1] - p[1])
          .map(([k, v]) => `${v}\t${k}`)
          .join('\n'),
      );
    assert.deepEqual(failures.slice(0, 6), [], `${failures.length} of ${cases} cases failed`);
  });
});

describe('review fuzz3: an HTTP+SSE upstream naming one endpoint on every stream', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  const opened: OpenedStream[] = [];
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages');
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
  transport: sse
auth:
  session_secret: "${'f'.repeat(40)}"
${keys}`);
  });
  after(async () => {
    for (const s of opened) s.close();
    await gateway.close(200);
    await upstream.close();
  });

  it("hole: one client's denied call was answered on another client's stream (same key, same upstream endpoint), then in a POST body it never reads", async () => {
    // failed before: the session handed out was the upstream endpoint signed for the key, the same
    // for both streams; the gateway wrote a denial on the stream last handed that session: B's. Once
    // B left, A's denials went in the POST's body (200), which a client of this transport ignores.
    const a = await openStream(gateway.mcpUrl, KEY);
    const b = await openStream(gateway.mcpUrl, KEY);
    opened.push(a, b);
    const endpointA = new URL((await a.next()).data, gateway.url).href;
    await b.next();
    const deny = (id: string) =>
      fetch(endpointA, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'nope', arguments: {} },
        }),
      });
    const first = await deny('from-a');
    assert.equal(first.status, 202, await first.text());
    const got = JSON.parse((await a.next()).data) as { id: unknown; error?: { code: number } };
    assert.equal(got.id, 'from-a');
    assert.equal(got.error?.code, -32602);
    b.close();
    await sleep(50);
    const second = await deny('from-a-2');
    assert.equal(second.status, 202, await second.text());
    assert.equal((JSON.parse((await a.next()).data) as { id: unknown }).id, 'from-a-2');
    assert.ok(!b.raw().includes('from-a'), b.raw());
    assert.equal(upstream.posts.length, 0, 'denied calls never reach the upstream');
  });
});

/**
 * A seeded, deterministic mutation fuzzer of the response side (review-fuzzresp): the upstream is the
 * attacker. Each case is one client request (a list, or a tools/call) whose upstream answer is written
 * from a random plan: hidden entries spelled with escapes, repeated and case-variant members, odd
 * whitespace; ids echoed wrong, twice, as other types; JSON or SSE with every framing the spec allows
 * (CR/LF/CRLF, comments, id/event/retry fields, a BOM, data over several lines, any chunking);
 * notifications and server requests about hidden things around the answer.
 *
 * The client side reads what it receives as real clients do (readers below): the TypeScript SDK
 * (eventsource-parser after a TextDecoder, `Response.json()`), an LF-only line splitter (the Go SDK,
 * mcp-go) and the WHATWG rules (CR, LF and CRLF end lines). Every decoded string any reader sees is
 * checked for a hidden name, and every response for its id.
 */
import { createParser } from 'eventsource-parser';

/** The request fuzzer's seeded generator (mulberry32): the same sequence on every machine. */
export { prng as rng } from './request-fuzz.ts';

export class Dice {
  readonly next: () => number;
  constructor(next: () => number) {
    this.next = next;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
}

/** Every hidden name and URI holds this marker; nothing the key may see does. */
export const MARK = 'secret';

export type ListMethod =
  | 'tools/list'
  | 'prompts/list'
  | 'resources/list'
  | 'resources/templates/list'
  | 'tasks/list'
  | 'resources/read';

export interface Kind {
  readonly method: ListMethod;
  readonly list: string;
  readonly field: string;
  readonly allowed: string;
  readonly hidden: string;
}

export const KINDS: readonly Kind[] = [
  { method: 'tools/list', list: 'tools', field: 'name', allowed: 'echo', hidden: 'secret_tool' },
  { method: 'prompts/list', list: 'prompts', field: 'name', allowed: 'greet', hidden: 'secret_prompt' },
  {
    method: 'resources/list',
    list: 'resources',
    field: 'uri',
    allowed: 'file:///pub/a.txt',
    hidden: 'file:///secret/b.txt',
  },
  {
    method: 'resources/templates/list',
    list: 'resourceTemplates',
    field: 'uriTemplate',
    allowed: 'file:///pub/{x}',
    hidden: 'file:///secret/{x}',
  },
  // No task is the key's: every entry goes, the "allowed" one too (it holds no marker).
  { method: 'tasks/list', list: 'tasks', field: 'taskId', allowed: 'task-a', hidden: 'secret-task' },
  // A read of an allowed URI whose contents name others (a directory): only readable ones stay.
  {
    method: 'resources/read',
    list: 'contents',
    field: 'uri',
    allowed: 'file:///pub/a.txt',
    hidden: 'file:///secret/b.txt',
  },
];

/** A JSON string literal for `s`, some characters escaped at random (`\uXXXX`, `\/`). */
export function str(d: Dice, s: string, escapes: number): string {
  if (escapes === 0 || !d.chance(escapes)) return JSON.stringify(s);
  let out = '"';
  for (const ch of s) {
    if (d.chance(0.4)) out += `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
    else if (ch === '/' && d.chance(0.5)) out += '\\/';
    else out += JSON.stringify(ch).slice(1, -1);
  }
  return out + '"';
}

/** JSON whitespace, mostly none. `nl` allows LF (the SSE writer splits data lines there). */
export function ws(d: Dice, odd: boolean): string {
  if (!odd || !d.chance(0.3)) return '';
  return d.pick([' ', '\t', '\n', '\r\n', ' \n ', '\n\t']);
}

/** `{k:v,...}` from already-written members, with odd whitespace between tokens. */
export function obj(d: Dice, odd: boolean, members: readonly [string, string][]): string {
  const w = () => ws(d, odd);
  return `{${w()}${members.map(([k, v]) => `${k}${w()}:${w()}${v}`).join(`${w()},${w()}`)}${w()}}`;
}

export function arr(d: Dice, odd: boolean, items: readonly string[]): string {
  const w = () => ws(d, odd);
  return `[${w()}${items.join(`${w()},${w()}`)}${w()}]`;
}

/** The hidden entry of a list, in one of its hostile spellings; `name` says which. */
export function hiddenEntry(d: Dice, kind: Kind, odd: boolean): { text: string; how: string } {
  const f = kind.field;
  const extra: [string, string][] =
    kind.field === 'name' ? [] : [['"name"', JSON.stringify(kind.list === 'resources' ? 'b' : 's')]];
  const hidden = kind.hidden;
  const variants: (() => [string, [string, string][]])[] = [
    () => ['plain', [[JSON.stringify(f), str(d, hidden, 0)]]],
    () => ['escaped value', [[JSON.stringify(f), str(d, hidden, 1)]]],
    () => ['escaped key', [[str(d, f, 1), JSON.stringify(hidden)]]],
    () => [
      'repeated, hidden first',
      [
        [JSON.stringify(f), str(d, hidden, 0.3)],
        [JSON.stringify(f), JSON.stringify(kind.allowed)],
      ],
    ],
    () => [
      'repeated, hidden last',
      [
        [JSON.stringify(f), JSON.stringify(kind.allowed)],
        [str(d, f, 0.3), str(d, hidden, 0.3)],
      ],
    ],
    () => [
      'case variant beside',
      [
        [JSON.stringify(d.pick([f.toUpperCase(), f[0]!.toUpperCase() + f.slice(1)])), JSON.stringify(hidden)],
        [JSON.stringify(f), JSON.stringify(kind.allowed)],
      ],
    ],
    () => [
      'case variant after',
      [
        [JSON.stringify(f), JSON.stringify(kind.allowed)],
        [JSON.stringify(f.replace(/[a-z]$/, (c) => c.toUpperCase())), JSON.stringify(hidden)],
      ],
    ],
    () => [
      'dot segment',
      [[JSON.stringify(f), str(d, kind.allowed.replace('/pub/', '/pub/../secret/'), 0.3)]],
    ],
    // A key ending in a backslash, then the member escaped: V8's JSON.parse can read the second as
    // the first (key-check.ts).
    () => [
      'key primed by a backslash key',
      [
        [JSON.stringify(`${f}\\`), JSON.stringify(kind.allowed)],
        [str(d, f, 1), JSON.stringify(hidden)],
        [JSON.stringify(`${f.slice(0, 1)}\\`), '1'],
      ],
    ],
    () => [
      // (`name"` is no member any reader takes for `name`: the value holds no marker.)
      'escaped quote in key',
      [
        [`"${f}\\""`, JSON.stringify(hidden.replace(MARK, 'sekret'))],
        [JSON.stringify(f), JSON.stringify(kind.allowed)],
      ],
    ],
    () => [
      'member as another type',
      [
        [
          JSON.stringify(f),
          d.pick([`[${JSON.stringify(hidden)}]`, `{"v":${JSON.stringify(hidden)}}`, 'null']),
        ],
      ],
    ],
    () => [
      'folded key (long s, Kelvin, snake)',
      [
        [JSON.stringify(f), JSON.stringify(kind.allowed)],
        [
          JSON.stringify(
            d.pick([
              f.replace('s', 'ſ'),
              f.replace('k', 'K'),
              f.replace(/([A-Z])/, '_$1').toLowerCase(),
              f.toUpperCase(),
            ]),
          ),
          JSON.stringify(hidden),
        ],
      ],
    ],
  ];
  const [how, members] = d.pick(variants)();
  const all: [string, string][] = [...members, ...extra];
  if (d.chance(0.3)) all.push(['"description"', '"x"']);
  if (d.chance(0.2)) all.push(['"n"', d.pick(['1e400', '-0', '12345678901234567890', '1.0'])]);
  return { text: obj(d, odd, all), how };
}

export function allowedEntry(d: Dice, kind: Kind, odd: boolean): string {
  const members: [string, string][] = [[str(d, kind.field, 0.1), str(d, kind.allowed, 0.2)]];
  if (kind.field !== 'name') members.push(['"name"', '"a"']);
  if (kind.list === 'tools') members.push(['"inputSchema"', '{"type":"object"}']);
  return obj(d, odd, members);
}

/** The id an answer carries: the tag as sent, or a hostile variant of it. */
export function answerId(
  d: Dice,
  tag: string,
  others: readonly string[],
  clientId: unknown,
): { text: string; how: string } {
  const variants: (() => [string, string])[] = [
    () => ['tag', JSON.stringify(tag)],
    () => ['tag', JSON.stringify(tag)],
    () => ['tag', JSON.stringify(tag)],
    () => ['tag escaped', str(d, tag, 1)],
    () => ['client id echoed', JSON.stringify(clientId)],
    () => ['another tag', JSON.stringify(others.length > 0 ? d.pick(others) : `${tag}x`)],
    () => ['tag changed', JSON.stringify(tag.slice(0, -1) + (tag.endsWith('A') ? 'B' : 'A'))],
    () => ['number', d.pick(['1', '0', '-0', '1.0', '1e0', String(clientId)])],
    () => ['null', 'null'],
    () => ['object', `{"id":${JSON.stringify(tag)}}`],
    () => ['array', `[${JSON.stringify(tag)}]`],
  ];
  const [how, text] = d.pick(variants)();
  return { text, how };
}

export interface Reading {
  readonly reader: string;
  /** The JSON texts of each message, as this reader splits them (one per event or body). */
  readonly payloads: string[];
  /** Set when this reader could not read the body at all. */
  readonly unreadable?: string;
}

/** The TypeScript SDK: TextDecoder (drops a leading BOM), then eventsource-parser 3, `message` events. */
export function readSdk(bytes: Buffer): Reading {
  const payloads: string[] = [];
  const parser = createParser({
    onEvent: (e) => {
      if (!e.event || e.event === 'message') payloads.push(e.data);
    },
  });
  parser.feed(new TextDecoder().decode(bytes));
  return { reader: 'sdk', payloads };
}

/** WHATWG: lines end at CRLF, LF or CR; one leading BOM dropped; every event's data, whatever its type. */
export function readWhatwg(bytes: Buffer): Reading {
  const text = new TextDecoder().decode(bytes);
  return { reader: 'whatwg', payloads: events(text.split(/\r\n|\r|\n/)) };
}

/** The Go SDK and mcp-go: lines end at LF only (a CR before it is dropped), no BOM handling. */
export function readLfOnly(bytes: Buffer): Reading {
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  return { reader: 'lf-only', payloads: events(text.split('\n').map((l) => l.replace(/\r$/, ''))) };
}

function events(lines: readonly string[]): string[] {
  const out: string[] = [];
  let data: string[] | undefined;
  // The last line is what follows the last line end: an unfinished line, not dispatched.
  for (const line of lines.slice(0, -1)) {
    if (line === '') {
      if (data !== undefined) out.push(data.join('\n'));
      data = undefined;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') (data ??= []).push(value);
  }
  return out;
}

/** Every string (keys included) of a JSON text, each decoded as written, repeated keys and all. */
export function jsonStrings(text: string): string[] {
  const out: string[] = [];
  const re = /"(?:[^"\\]|\\.)*"/gs;
  for (const m of text.matchAll(re)) {
    try {
      out.push(JSON.parse(m[0]) as string);
    } catch {
      out.push(m[0]);
    }
  }
  return out;
}

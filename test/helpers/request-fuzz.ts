/**
 * A seeded, deterministic mutation fuzzer of MCP requests (review-fuzzreq): well-formed requests
 * are mutated in their JSON bytes (escapes, surrogates, duplicate members, order, whitespace, BOMs,
 * ids, names' case and normalisation, nesting, truncation) and in their HTTP envelope (media type,
 * charset, encodings, chunking, repeated headers, 2026-07-28 mirror headers). The same seed always
 * gives the same cases, so a failure is replayed by its case number.
 */

/** mulberry32: small, fast, and the same sequence on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)] as T;

/** The seeds: well-formed requests of a key allowed `echo`, `get_*`, the prompt `greet`, file:///public/*. */
export const SEEDS: readonly string[] = [
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":1}}}',
  '{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Oslo"}}}',
  '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret","arguments":{"q":"x"}}}',
  '{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"greet","arguments":{"who":"me"}}}',
  '{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"admin"}}',
  '{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"file:///public/a.txt"}}',
  '{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"uri":"file:///private/key"}}',
  '{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fz","version":"1"}}}',
  '{"jsonrpc":"2.0","method":"notifications/initialized"}',
  '{"jsonrpc":"2.0","id":8,"method":"ping"}',
  '[{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{}}},{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"secret","arguments":{}}}]',
  '[{"jsonrpc":"2.0","id":11,"method":"prompts/get","params":{"name":"greet"}},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":12,"method":"resources/read","params":{"uri":"file:///public/b"}}]',
  '{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"echo","arguments":{"deep":{"a":[1,{"b":"c"}]}},"_meta":{"progressToken":1}}}',
  '{"jsonrpc":"2.0","id":14,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"who","value":"m"}}}',
  '{"jsonrpc":"2.0","id":15,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///public/{x}"},"argument":{"name":"x","value":"a"}}}',
  '{"jsonrpc":"2.0","id":16,"method":"resources/subscribe","params":{"uri":"file:///public/a.txt"}}',
  '{"jsonrpc":"2.0","id":17,"method":"tools/list","params":{}}',
  '{"jsonrpc":"2.0","id":18,"method":"logging/setLevel","params":{"level":"info"}}',
  '{"jsonrpc":"2.0","id":19,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}',
  '{"jsonrpc":"2.0","id":20,"method":"tasks/get","params":{"taskId":"t1"}}',
  '{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{},"task":{"ttl":1000}}}',
  '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"x"}}',
];

/** Names a mutation may put where a name was: denied ones, case and normalisation variants. */
const NAME_VARIANTS = [
  'secret',
  'Echo',
  'ECHO',
  'echo ',
  ' echo',
  'echo\u0000',
  'ｅｃｈｏ',
  'e\u0301cho',
  'echo\u200b',
  'get_weather/../secret',
  'get_',
  'get_*',
  'gеt_x', // Cyrillic е
  'greet',
  'Greet',
  'admin',
  'file:///public/../private/key',
  'file:///public/%2e%2e/private/key',
  'file:///PUBLIC/a',
  'file:///public/a\u0000',
  'FILE:///public/a',
  'file:///public/a#x',
  '',
];

const IDS = [
  '-0',
  '1e2',
  '1.0',
  '1E0',
  '0.5',
  '12345678901234567890',
  '9007199254740993',
  '-1',
  'null',
  'true',
  '"x"',
  '""',
  '"\\u0000"',
  '"\\ud800"',
  '{}',
  '[]',
  '1e400',
  '0x10',
  '01',
];

const WS = [' ', '\t', '\n', '\r', '\u00a0', '\u000b', '\u000c', '\ufeff', '\u2028', '  \r\n '];

/** Byte offsets of the starts of every string token and the index of its closing quote. */
function strings(text: string): { start: number; end: number; key: boolean }[] {
  const out: { start: number; end: number; key: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '"') continue;
    let j = i + 1;
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    let k = j + 1;
    while (k < text.length && /\s/.test(text[k] as string)) k++;
    out.push({ start: i, end: j, key: text[k] === ':' });
    i = j;
  }
  return out;
}

/** Positions between tokens (after a structural character). */
function boundaries(text: string): number[] {
  const out: number[] = [0, text.length];
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    if (c === '{' || c === '}' || c === '[' || c === ']' || c === ',' || c === ':') out.push(i, i + 1);
  }
  return out;
}

const escapeChar = (c: string, upper: boolean): string => {
  const hex = c.charCodeAt(0).toString(16).padStart(4, '0');
  return `\\u${upper ? hex.toUpperCase() : hex}`;
};

type Mutator = (r: Rand, t: string) => string;

const MUTATORS: readonly [string, Mutator][] = [
  ['pad', (r, t) => pick(r, PADS)(r, t)],
  [
    'escape',
    (r, t) => {
      const ss = strings(t);
      if (ss.length === 0) return t;
      const s = pick(r, ss);
      if (s.end - s.start < 2) return t;
      const i = s.start + 1 + int(r, s.end - s.start - 1);
      if (t[i] === '\\' || t[i - 1] === '\\') return t;
      const c = t[i] as string;
      const rep = pick(r, [
        escapeChar(c, r() < 0.5),
        c === '/' ? '\\/' : escapeChar(c, false),
        `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').slice(0, 2)}`, // malformed
        '\\ud800',
        '\\udc00\\ud800',
        '\\ud83d\\ude00',
        '\\\\',
        '\\u0000',
      ]);
      return t.slice(0, i) + rep + t.slice(i + 1);
    },
  ],
  [
    'dupe',
    (r, t) => {
      // Insert a repeat of a member (maybe with another value) right after an object's `{`.
      const ss = strings(t).filter((s) => s.key);
      if (ss.length === 0) return t;
      const s = pick(r, ss);
      const key = t.slice(s.start, s.end + 1);
      // The object's opening brace: walk back from the key.
      let depth = 0;
      let open = -1;
      for (let i = s.start - 1; i >= 0; i--) {
        const c = t[i];
        if (c === '}' || c === ']') depth++;
        else if (c === '{' || c === '[') {
          if (depth === 0) {
            open = i;
            break;
          }
          depth--;
        }
      }
      if (open < 0) return t;
      const value = pick(r, [
        `"${pick(r, NAME_VARIANTS)}"`,
        '{}',
        '1',
        'null',
        '"tools/call"',
        '"prompts/get"',
        '{"name":"secret"}',
      ]);
      const spelled = pick(r, [key, key.toUpperCase(), key.replace('s', 'ſ'), key.replace(/^"/, '"\\u00')]);
      const member = `${spelled.startsWith('"\\u00') ? `"\\u00${key.charCodeAt(1).toString(16)}${key.slice(2)}` : spelled}:${value}`;
      return r() < 0.5
        ? `${t.slice(0, open + 1)}${member},${t.slice(open + 1)}`
        : (() => {
            // After the member: just before the object's closing brace.
            let d = 0;
            for (let i = open + 1; i < t.length; i++) {
              const c = t[i];
              if (c === '"') {
                i++;
                while (i < t.length && t[i] !== '"') i += t[i] === '\\' ? 2 : 1;
                continue;
              }
              if (c === '{' || c === '[') d++;
              else if (c === '}' || c === ']') {
                if (d === 0) return `${t.slice(0, i)}${t[i - 1] === '{' ? '' : ','}${member}${t.slice(i)}`;
                d--;
              }
            }
            return t;
          })();
    },
  ],
  [
    'reorder',
    (r, t) => {
      try {
        const reorder = (v: unknown): unknown => {
          if (Array.isArray(v)) return v.map(reorder);
          if (v === null || typeof v !== 'object') return v;
          const entries = Object.entries(v as Record<string, unknown>);
          entries.sort(() => r() - 0.5);
          const out: Record<string, unknown> = {};
          for (const [k, x] of entries) out[k] = reorder(x);
          return out;
        };
        return JSON.stringify(reorder(JSON.parse(t)));
      } catch {
        return t;
      }
    },
  ],
  [
    'ws',
    (r, t) => {
      const b = pick(r, boundaries(t));
      return t.slice(0, b) + pick(r, WS) + t.slice(b);
    },
  ],
  ['bom', (_r, t) => `\ufeff${t}`],
  [
    'id',
    (r, t) => {
      const m = /"id":(-?\d+|"[^"]*")/.exec(t);
      if (!m) return t.replace('{', `{"id":${pick(r, IDS)},`);
      return t.slice(0, m.index) + `"id":${pick(r, IDS)}` + t.slice(m.index + m[0].length);
    },
  ],
  [
    'name',
    (r, t) => {
      const re = /"(name|uri|method|type|taskId)":"([^"\\]*)"/g;
      const all = [...t.matchAll(re)];
      if (all.length === 0) return t;
      const m = pick(r, all);
      const v =
        m[1] === 'type'
          ? pick(r, ['ref/prompt', 'ref/resource', 'ref/Prompt', 'ref/tool', 'prompt'])
          : m[1] === 'method'
            ? pick(r, [
                'Tools/call',
                'tools/Call',
                'tools/call ',
                'tools/call\u0000',
                'tools\\/call',
                'tools/list',
                'prompts/get',
                'resources/read',
                'completion/complete',
                'notifications/cancelled',
                'tasks/get',
                'sampling/createMessage',
                'x/unknown',
              ])
            : pick(r, NAME_VARIANTS).replace(/\\/g, '\\\\').replaceAll('\u0000', '\\u0000');
      return t.slice(0, m.index) + `"${m[1]}":"${v}"` + t.slice((m.index ?? 0) + m[0].length);
    },
  ],
  [
    'nest',
    (r, t) => {
      const depth = pick(r, [10, 63, 64, 65, 200]);
      const at = t.indexOf('"arguments":');
      if (at < 0) return t;
      const p = at + '"arguments":'.length;
      return `${t.slice(0, p)}{"d":${'['.repeat(depth)}${']'.repeat(depth)},${t.slice(p + 1)}`;
    },
  ],
  ['truncate', (r, t) => t.slice(0, int(r, t.length))],
  [
    'byte',
    (r, t) => {
      const i = int(r, t.length);
      return t.slice(0, i) + String.fromCharCode(int(r, 128)) + t.slice(i + 1);
    },
  ],
  [
    'wrap',
    (r, t) =>
      pick(r, [`[${t}]`, `[${t},${t}]`, `[]`, `[${t},1]`, `${t}${t}`, `${t} `, `${t}\u0000`, `[${t}`]),
  ],
  [
    'member',
    (r, t) => {
      // An extra member at the message or params level.
      const extra = pick(r, [
        '"Method":"tools/call"',
        '"params":{"name":"secret"}',
        '"result":{}',
        '"error":{"code":1,"message":"x"}',
        '"__proto__":{"x":1}',
        '"constructor":{"prototype":{}}',
        '"_meta":{"progressToken":"t"}',
        '"meta":{}',
        '"task":{"ttl":1}',
        '"Name":"secret"',
        '"URI":"file:///private/key"',
        '"name":"secret"',
      ]);
      const at = r() < 0.5 ? t.indexOf('{') : t.indexOf('"params":{') + '"params":'.length;
      if (at < 0 || t[at] !== '{') return t;
      return `${t.slice(0, at + 1)}${extra},${t.slice(at + 1)}`;
    },
  ],
];

/** A long JSON string body (16-40 KiB, so the gateway leaves it out of JSON.parse), of mixed spellings. */
function longString(r: Rand): string {
  const pieces = ['abcdefgh', 'é', '😀', '\\n', '\\u00e9', '\\ud83d\\ude00', '\\"', '\\\\', '\\/', '\\u0041'];
  const sneak = ['\\",\\"name\\":\\"secret', '\\u0022,\\u0022name\\u0022:\\u0022secret', '\\\\u0022'];
  let out = '';
  const target = 16 * 1024 + int(r, 24 * 1024);
  while (out.length < target) out += r() < 0.001 ? pick(r, sneak) : pick(r, pieces).repeat(1 + int(r, 50));
  return out;
}

const PADS: readonly ((r: Rand, t: string) => string)[] = [
  (r, t) => t.replace('"arguments":{', `"arguments":{"pad":"${longString(r)}",`),
  (r, t) => t.replace('"arguments":{', `"arguments":{"${longString(r)}":1,`),
  (r, t) => t.replace('"params":{', `"params":{"_meta":{"p":"${longString(r)}"},`),
  (r, t) => t.replace('"params":{', `"params":{"extra":["${longString(r)}"],`),
  (r, t) => t.replace(/}}$/, `,"tail":"${longString(r)}"}}`),
  (r, t) =>
    t.replace('"arguments":{', `"arguments":{"list":[${'1.0,-0,1e400,'.repeat(1500 + int(r, 2000))}1],`),
];
/** Mutations on the UTF-8 bytes after the text mutations. */
const BYTE_MUTATORS: readonly [string, (r: Rand, b: Buffer) => Buffer][] = [
  ['utf8-bom', (_r, b) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b])],
  [
    'overlong',
    (r, b) => {
      // An overlong spelling of an ASCII character inside the body (`/` as C0 AF, `"` as C0 A2).
      const i = int(r, b.length);
      const c = b[i] ?? 0x2f;
      if (c >= 0x80) return b;
      return Buffer.concat([
        b.subarray(0, i),
        Buffer.from([0xc0 | (c >> 6), 0x80 | (c & 0x3f)]),
        b.subarray(i + 1),
      ]);
    },
  ],
  [
    'surrogate-bytes',
    (r, b) => {
      const i = int(r, b.length);
      return Buffer.concat([b.subarray(0, i), Buffer.from([0xed, 0xa0, 0x80]), b.subarray(i)]);
    },
  ],
  ['utf16', (_r, b) => Buffer.from(b.toString('utf8'), 'utf16le')],
  [
    'latin1-high',
    (r, b) => {
      const i = int(r, b.length);
      return Buffer.concat([b.subarray(0, i), Buffer.from([0xe9]), b.subarray(i)]);
    },
  ],
];

export interface Envelope {
  /** Extra header lines, or replacements of the defaults (by lower-case name). */
  readonly headers: [string, string][];
  /** Split points of the body for chunked encoding; undefined: Content-Length. */
  readonly chunks: number[] | undefined;
  /** Where the raw bytes are split into separate socket writes. */
  readonly writes: number[];
  readonly tags: string[];
}

const CONTENT_TYPES = [
  'application/json',
  'APPLICATION/JSON',
  'application/json; charset=utf-8',
  'application/json;charset="UTF-8"',
  'application/json; charset=utf-16',
  'application/json; charset=utf-7',
  'application/json; charset=latin1',
  'application/json; charset=utf-8; charset=utf-16',
  'application/json; charset',
  'application/json;;',
  'application/json, text/plain',
  'application/json-seq',
  'application/jsonx',
  'text/json',
  'text/plain',
  'application/x-www-form-urlencoded',
  ' application/json ',
  'application/json\t',
  '',
];

const uriOrSelf = (s: string): string => {
  try {
    return encodeURI(s);
  } catch {
    return s;
  }
};

/** The envelope of one case: mostly the plain one, sometimes a variant. */
export function envelope(r: Rand, body: Buffer, message: unknown): Envelope {
  const headers: [string, string][] = [];
  const tags: string[] = [];
  if (r() < 0.25) {
    const ct = pick(r, CONTENT_TYPES);
    headers.push(['Content-Type', ct]);
    tags.push(`ct=${ct}`);
  }
  if (r() < 0.1) {
    const ce = pick(r, ['gzip', 'identity', 'br', 'deflate', 'identity, gzip', 'IDENTITY', 'x']);
    headers.push(['Content-Encoding', ce]);
    tags.push(`ce=${ce}`);
  }
  if (r() < 0.08) {
    const [n, v] = pick(r, [
      ['Content-Type', 'text/plain'],
      ['Content-Type', 'application/json'],
      ['Authorization', 'Bearer mcpg_x'],
      ['X-API-Key', 'mcpg_x'],
      ['Content-Encoding', 'gzip'],
      ['Mcp-Method', 'tools/call'],
      ['Mcp-Protocol-Version', '2026-07-28'],
    ] as const);
    // A `+` before the name: sent beside the default header of that name, not instead of it.
    headers.push([`+${n}`, v]);
    tags.push(`dup=${n}`);
  }
  if (r() < 0.1) {
    const m = message as { method?: unknown; params?: { name?: unknown; uri?: unknown } } | undefined;
    const method = typeof m?.method === 'string' ? m.method : 'tools/call';
    const name = m?.params?.name ?? m?.params?.uri;
    headers.push(['Mcp-Protocol-Version', '2026-07-28']);
    headers.push(['Mcp-Method', r() < 0.8 ? method : 'tools/call']);
    if (typeof name === 'string')
      headers.push([
        'Mcp-Name',
        pick(r, [uriOrSelf(name), `=?base64?${Buffer.from(name).toString('base64')}?=`, name, 'echo']),
      ]);
    if (r() < 0.3)
      headers.push([
        pick(r, ['Mcp-Param-Text', 'Mcp-Param-City', 'mcp-param-n', 'Mcp-Param-Q']),
        pick(r, [
          'hi',
          'x',
          '=?base64?aGk=?=',
          'Oslo',
          '1',
          '1.0',
          ' hi',
          'hi ',
          'HI',
          '=?base64?T3Nsbw==?=',
          '',
        ]),
      ]);
    tags.push('mcp-headers');
  }
  if (r() < 0.08) {
    const [n, v] = pick(r, [
      ['Expect', '100-continue'],
      ['Accept', 'application/json'],
      ['Accept', 'text/event-stream'],
      ['Accept', '*/*'],
      ['Mcp-Protocol-Version', '2025-03-26'],
      ['Mcp-Protocol-Version', '2099-01-01'],
      ['Mcp-Protocol-Version', '2026-07-28'],
      ['+Mcp-Protocol-Version', '2025-06-18'],
      ['Content-Type', 'application/json; boundary=x; charset=utf-8'],
      ['+Content-Length', '0'],
    ] as const);
    headers.push([n, v]);
    tags.push(`hdr=${n}:${v}`);
  }
  let chunks: number[] | undefined;
  if (r() < 0.3) {
    chunks = [];
    const n = 1 + int(r, 6);
    for (let i = 0; i < n; i++) chunks.push(int(r, body.length + 1));
    chunks.sort((a, b) => a - b);
    tags.push('chunked');
    if (r() < 0.2) {
      const te = pick(r, ['Chunked', 'gzip, chunked', 'chunked, chunked', 'chunked ']);
      headers.push(['Transfer-Encoding', te]);
      tags.push(`te=${te}`);
    }
  }
  const writes: number[] = [];
  if (r() < 0.3) {
    const n = 1 + int(r, 4);
    for (let i = 0; i < n; i++) writes.push(int(r, 400 + body.length));
    writes.sort((a, b) => a - b);
    tags.push('split');
  }
  return { headers, chunks, writes, tags };
}

export interface Case {
  readonly n: number;
  /** A body sent (and parsed by the gateway) just before this one, to prime its JSON.parse. */
  readonly pre?: Buffer | undefined;
  readonly body: Buffer;
  readonly envelope: Envelope;
  readonly tags: string[];
}

/**
 * JSON text of `value` with one extra member, spelled `rawKey` (as it stands between the quotes)
 * with the value text `valueText`, inserted right after the member `after` of the object at `path`.
 */
function spellWith(
  value: unknown,
  path: readonly string[],
  after: string,
  rawKey: string,
  valueText: string,
): string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return JSON.stringify(value);
  const members: string[] = [];
  for (const [k, x] of Object.entries(value as Record<string, unknown>)) {
    const inside = path.length > 0 && path[0] === k;
    members.push(
      `${JSON.stringify(k)}:${inside ? spellWith(x, path.slice(1), after, rawKey, valueText) : JSON.stringify(x)}`,
    );
    if (path.length === 0 && k === after) members.push(`"${rawKey}":${valueText}`);
  }
  return `{${members.join(',')}}`;
}

/** What a repeated member may carry instead of the judged one. */
const EVIL: Readonly<Record<string, string>> = {
  name: '"secret"',
  uri: '"file:///private/key"',
  method: '"sampling/createMessage"',
  arguments: '{"q":"evil"}',
  params: '{"name":"secret","uri":"file:///private/key"}',
  id: '99',
  jsonrpc: '"1.0"',
  _meta: '{"progressToken":"evil"}',
};

/**
 * A misread primed by an earlier body (key-check.ts): V8's JSON.parse can read a key spelled with
 * an escape as an earlier key, after the same keys, that spells the escape's first characters. So
 * the earlier body (`pre`) has that key and this one a repeat of a judged member spelled with the
 * escape, carrying another value.
 */
function primed(r: Rand, text: string): { pre: string; body: string } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const message = Array.isArray(value) ? value[0] : value;
  if (message === null || typeof message !== 'object') return undefined;
  const paths: string[][] = [[]];
  const params = (message as { params?: unknown }).params;
  if (params !== null && typeof params === 'object') {
    paths.push(['params']);
    if ((params as { arguments?: unknown }).arguments !== undefined) paths.push(['params', 'arguments']);
  }
  const path = pick(r, paths);
  let o: unknown = message;
  for (const k of path) o = (o as Record<string, unknown>)[k];
  const keys = Object.keys(o as Record<string, unknown>);
  if (keys.length === 0) return undefined;
  const after = pick(r, keys);
  const key = pick(r, [after, ...keys]);
  const i = int(r, key.length);
  const c = key[i] as string;
  const escape = pick(r, [
    `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`,
  ]);
  // The key as JSON source text: one character spelled as a `\u` escape.
  const source = key.slice(0, i) + escape + key.slice(i + 1);
  // The earlier key: the first characters of the escaped spelling, as many as the key has.
  const earlier = source.slice(0, key.length);
  const earlierJson = JSON.stringify(earlier).slice(1, -1);
  const pre = spellWith(message, path, after, earlierJson, '0');
  const evil = EVIL[key] ?? pick(r, ['"secret"', '{}', '1']);
  const body = spellWith(message, path, after, source, evil);
  return { pre, body: Array.isArray(value) ? `[${body}]` : body };
}

/** Case `n` of the fuzzer for `seed`: one seed, one to three mutations, maybe a byte mutation. */
export function makeCase(seed: number, n: number): Case {
  const r = prng(seed * 1_000_003 + n);
  let text = pick(r, SEEDS);
  const tags: string[] = [`seed#${SEEDS.indexOf(text)}`];
  let pre: Buffer | undefined;
  if (r() < 0.15) {
    const p = primed(r, text);
    if (p !== undefined) {
      pre = Buffer.from(p.pre);
      text = p.body;
      tags.push('primed');
    }
  }
  if (r() < 0.3) {
    text = pick(r, PADS)(r, text);
    tags.push('pad');
  }
  const count = r() < 0.15 ? 0 : 1 + int(r, 3);
  for (let i = 0; i < count; i++) {
    const [name, mutate] = pick(r, MUTATORS);
    text = mutate(r, text);
    tags.push(name);
  }
  let body: Buffer = Buffer.from(text, 'utf8');
  if (r() < 0.08) {
    const [name, mutate] = pick(r, BYTE_MUTATORS);
    body = mutate(r, body);
    tags.push(name);
  }
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    message = undefined;
  }
  const env = envelope(r, body, Array.isArray(message) ? message[0] : message);
  return { n, pre, body, envelope: env, tags: [...tags, ...env.tags] };
}

/**
 * A JSON parser that keeps the FIRST of repeated keys (as some parsers do: Jackson with
 * FAIL_ON_READING_DUP_TREE_KEY off keeps the last, Go the last, but many hand-written and streaming
 * readers stop at the first). A forwarded body it reads differently from JSON.parse is ambiguous.
 */
export function parseFirstWins(text: string): unknown {
  return parseJson(text, 'first');
}

/**
 * JSON.parse's reading of valid JSON `text` (`last`), or the first-wins one, built by hand: V8's
 * JSON.parse can be primed by an earlier parse to misread a key (key-check.ts), and the harness
 * parses in the gateway's process, so its own reading of what crossed must not depend on that.
 * Strings are decoded by JSON.parse of each string token alone (no keys, nothing to misread).
 */
export function parseJson(text: string, repeated: 'first' | 'last'): unknown {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      ws();
      if (text[i] === '}') return (i++, out);
      for (;;) {
        ws();
        const k = value() as string;
        ws();
        i++; // :
        const v = value();
        if (repeated === 'last' || !Object.prototype.hasOwnProperty.call(out, k))
          Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i++] === '}') return out;
      }
    }
    if (c === '[') {
      i++;
      const out: unknown[] = [];
      ws();
      if (text[i] === ']') return (i++, out);
      for (;;) {
        out.push(value());
        ws();
        if (text[i++] === ']') return out;
      }
    }
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = JSON.parse(text.slice(i, j + 1)) as string;
      i = j + 1;
      return s;
    }
    let j = i;
    while (j < text.length && !',}] \t\n\r'.includes(text[j] as string)) j++;
    const v = JSON.parse(text.slice(i, j)) as unknown;
    i = j;
    return v;
  };
  return value();
}

/**
 * Every object's keys, at any depth, that equal another key of the same object after Go's
 * case folding (a reader matching struct fields case-insensitively reads them as one).
 */
export function caseTwins(text: string): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v === null || typeof v !== 'object') return;
    const seen = new Map<string, string>();
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const folded = k
        .toLowerCase()
        .replace(/ſ/g, 's')
        .replace(/\u212a/g, 'k');
      if (seen.has(folded)) out.push(`${seen.get(folded)}/${k}`);
      seen.set(folded, k);
      walk(x);
    }
  };
  walk(parseFirstWins(text));
  return out;
}

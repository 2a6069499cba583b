/**
 * Filters a `tools/list` or `prompts/list` response without parsing it whole. A page of 1,000 tools
 * is ~660 KiB: JSON.parse and JSON.stringify of it cost ~4 ms, while this scanner walks the bytes
 * once (~0.8 ms), reads only each entry's `name`, and copies the kept entries' bytes as they are.
 *
 * It is a fast path, never the authority: whenever the body is not the plain shape it expects (a
 * batch, a key written with escapes, a duplicated `result`, `tools`, `prompts` or `name` key, a
 * misplaced bracket, colon or comma in the levels it walks, anything after the value) it returns
 * undefined and the caller filters with JSON.parse, which also refuses what is not JSON. A JSON body
 * it accepts is filtered exactly as the parsed path filters it; values it skips are only
 * bracket-counted, so a body that is not JSON inside them keeps only allowed entries and is still
 * refused by every client (property tests hold both).
 */
import type { JsonRpcId } from '../jsonrpc/message.ts';
import { ws } from '../jsonrpc/strict-skip.ts';
import { ENTRY_MEMBERS, isVariantAt, LIST_RESULT_MEMBERS, MESSAGE_MEMBERS } from './case-variants.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SLASH = 0x2f;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** Thrown inside the scanner when the body is not the expected plain shape; caught below. */
const GIVE_UP = Symbol('give up');
/**
 * Fatal: a name that is not valid UTF-8 is not judged here. The scanner copies kept entries' bytes
 * as they are, so a name it judged after replacing bad bytes with U+FFFD could reach a lenient
 * client as something else; the parsed path re-encodes what it judged instead.
 */
const decoder = new TextDecoder('utf-8', { fatal: true });

export type FastKind = 'tools' | 'prompts';

export interface FastListOptions {
  /** The list kind planned for a response id, if any. */
  readonly kindFor: (id: JsonRpcId) => string | undefined;
  /** Whether an entry stays; its raw bytes (as the client would receive them) are body[start, end). */
  readonly keep: (kind: FastKind, name: string, body: Uint8Array, start: number, end: number) => boolean;
  /** Told the extent of the list, body[open, end), before its entries are offered to `keep`. */
  readonly startList?:
    ((kind: FastKind, body: Uint8Array, open: number, end: number, count: number) => void) | undefined;
}

/**
 * Returns the filtered bytes (the input itself when nothing had to go, or when the response is not
 * one the plan filters), or undefined when the caller must take the parsed path.
 */
export function filterListFast(body: Buffer, options: FastListOptions): Buffer | undefined {
  try {
    // Indexing a plain Uint8Array is faster in V8 than indexing its Buffer subclass.
    const bytes = new Uint8Array(body.buffer, body.byteOffset, body.length);
    const out = scan(bytes, options);
    return out === bytes
      ? body
      : out === undefined
        ? undefined
        : Buffer.from(out.buffer, out.byteOffset, out.length);
  } catch (err) {
    if (err === GIVE_UP) return undefined;
    throw err;
  }
}

const KEY_ID = Buffer.from('id');
const KEY_RESULT = Buffer.from('result');
const KEY_METHOD = Buffer.from('method');
const KEY_NAME = Buffer.from('name');
const KEY_KIND: Readonly<Record<FastKind, Buffer>> = {
  tools: Buffer.from('tools'),
  prompts: Buffer.from('prompts'),
};
/**
 * Result members the parsed path rewrites (a cursor it seals, another kind's list it drops): a
 * result holding one is left to it.
 */
const KEYS_REWRITTEN = ['nextCursor', 'resources', 'resourceTemplates', 'tasks'].map((k) => Buffer.from(k));
/**
 * A caching scope the parsed path makes `"private"` unless it is spelled so, and adds beside a ttl
 * (filter-list.ts).
 */
const KEY_CACHE_SCOPE = Buffer.from('cacheScope');
const KEY_TTL = Buffer.from('ttlMs');
const PRIVATE_SCOPE = Buffer.from('"private"');

/** Whether the key whose text (without quotes) is b[start, end) is `key`. */
function keyIs(b: Uint8Array, start: number, end: number, key: Buffer): boolean {
  if (end - start !== key.length) return false;
  for (let k = 0; k < key.length; k++) if (b[start + k] !== key[k]) return false;
  return true;
}

/**
 * Called for each member of an object with the key's text b[keyStart, keyEnd) and where the value
 * starts; returns the index after the value (a visitor that does not descend calls skipValue).
 */
type Visit = (keyStart: number, keyEnd: number, valueStart: number) => number;

/** A list value as entries() found it. */
interface ListScan {
  /** The index of its `[`; -1 when the value is not an array. */
  open: number;
  /** The index after the value. */
  end: number;
  /** Per element: its start, its end, and its `name` value's start and end (-1 when it has none). */
  readonly items: number[];
}

/**
 * One pass over the body: the top-level members are walked, `result` is descended into, and its
 * `tools` and `prompts` arrays are walked element by element, recording each element's extent and
 * where its `name` is. Which array matters is known only from the id, which may come after
 * `result`, so names are read afterwards, for that array only.
 */
function scan(b: Uint8Array, options: FastListOptions): Uint8Array | undefined {
  const i = ws(b, 0);
  if (b[i] !== OPEN_OBJECT) return undefined;
  let idStart = -1;
  let idEnd = -1;
  let resultStart = -1;
  let tools: ListScan | undefined;
  let prompts: ListScan | undefined;
  let scoped = false;
  let ttl = false;
  const visitResult: Visit = (ks, ke, vs) => {
    if (keyIs(b, ks, ke, KEY_KIND.tools)) {
      if (tools !== undefined) throw GIVE_UP;
      tools = entries(b, vs);
      return tools.end;
    }
    if (keyIs(b, ks, ke, KEY_KIND.prompts)) {
      if (prompts !== undefined) throw GIVE_UP;
      prompts = entries(b, vs);
      return prompts.end;
    }
    for (const key of KEYS_REWRITTEN) if (keyIs(b, ks, ke, key)) throw GIVE_UP;
    if (keyIs(b, ks, ke, KEY_CACHE_SCOPE)) {
      const end = skipValue(b, vs);
      if (!keyIs(b, vs, end, PRIVATE_SCOPE)) throw GIVE_UP;
      scoped = true;
      return end;
    }
    if (keyIs(b, ks, ke, KEY_TTL)) ttl = true;
    // A key a case-folding client reads as a list (`"Tools"`): the parsed path drops it.
    if (isVariantAt(b, ks - 1, ke + 1, LIST_RESULT_MEMBERS)) throw GIVE_UP;
    return skipValue(b, vs);
  };
  const end = members(b, i, (ks, ke, vs) => {
    if (keyIs(b, ks, ke, KEY_ID)) {
      if (idStart !== -1) throw GIVE_UP;
      idStart = vs;
      return (idEnd = skipValue(b, vs));
    }
    if (keyIs(b, ks, ke, KEY_RESULT)) {
      if (resultStart !== -1) throw GIVE_UP;
      resultStart = vs;
      return b[vs] === OPEN_OBJECT ? members(b, vs, visitResult) : skipValue(b, vs);
    }
    if (keyIs(b, ks, ke, KEY_METHOD)) throw GIVE_UP;
    // `"Result"`: the parsed path refuses the message (integrity/restore.ts).
    if (isVariantAt(b, ks - 1, ke + 1, MESSAGE_MEMBERS)) throw GIVE_UP;
    return skipValue(b, vs);
  });
  if (ws(b, end) !== b.length) return undefined;
  // Not a response with a result and an id: nothing the plan filters.
  if (resultStart === -1 || idStart === -1) return b;
  // A ttl without a scope: if the plan filters it, the parsed path adds "private".
  const unscoped = ttl && !scoped;
  const id = parseId(b, idStart, idEnd);
  if (id === null) return b;
  const kind = options.kindFor(id);
  if (kind === undefined) return b;
  if (kind !== 'tools' && kind !== 'prompts') return undefined;
  if (unscoped) return undefined;
  if (b[resultStart] !== OPEN_OBJECT) return undefined;
  // The other kind's list beside this one: the parsed path drops it.
  if ((kind === 'tools' ? prompts : tools) !== undefined) return undefined;
  const list = kind === 'tools' ? tools : prompts;
  // The result has no such list: nothing to filter (the parsed path returns it as it is too).
  if (list === undefined) return b;
  // A list that is not an array: the parsed path empties it.
  if (list.open === -1) return undefined;
  const items = list.items;
  options.startList?.(kind, b, list.open, list.end, items.length / 4);
  const kept: number[] = [];
  let removed = false;
  for (let k = 0; k < items.length; k += 4) {
    const nameStart = items[k + 2] as number;
    const name =
      nameStart !== -1 && b[nameStart] === QUOTE
        ? readString(b, nameStart, items[k + 3] as number)
        : undefined;
    const start = items[k] as number;
    const end = items[k + 1] as number;
    if (name !== undefined && options.keep(kind, name, b, start, end)) kept.push(start, end);
    else removed = true;
  }
  if (!removed) return b;
  // The kept entries' bytes, as they are, between the untouched head and tail of the body.
  const head = b.subarray(0, list.open + 1);
  const tail = b.subarray(list.end - 1);
  let size = head.length + tail.length + Math.max(0, kept.length / 2 - 1);
  for (let k = 0; k < kept.length; k += 2) size += (kept[k + 1] as number) - (kept[k] as number);
  const out = Buffer.allocUnsafe(size);
  out.set(head, 0);
  let at = head.length;
  for (let k = 0; k < kept.length; k += 2) {
    if (k > 0) out[at++] = COMMA;
    const part = b.subarray(kept[k] as number, kept[k + 1] as number);
    out.set(part, at);
    at += part.length;
  }
  out.set(tail, at);
  return out;
}

/** Walks the list value starting at `start`. */
function entries(b: Uint8Array, start: number): ListScan {
  const items: number[] = [];
  if (b[start] !== OPEN_ARRAY) return { open: -1, end: skipValue(b, start), items };
  let nameStart = -1;
  let nameEnd = -1;
  const findName: Visit = (ks, ke, vs) => {
    const ve = skipValue(b, vs);
    if (keyIs(b, ks, ke, KEY_NAME)) {
      if (nameStart !== -1) throw GIVE_UP;
      nameStart = vs;
      nameEnd = ve;
    }
    // `"namE"`: the parsed path drops the entry (a case-folding client reads it as the name).
    else if (isVariantAt(b, ks - 1, ke + 1, ENTRY_MEMBERS.name)) throw GIVE_UP;
    return ve;
  };
  let i = ws(b, start + 1);
  if (b[i] === CLOSE_ARRAY) return { open: start, end: i + 1, items };
  for (;;) {
    let elementEnd: number;
    nameStart = -1;
    if (b[i] === OPEN_OBJECT) elementEnd = members(b, i, findName);
    else elementEnd = skipValue(b, i);
    items.push(i, elementEnd, nameStart, nameEnd);
    i = ws(b, elementEnd);
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    if (b[i] === CLOSE_ARRAY) return { open: start, end: i + 1, items };
    throw GIVE_UP;
  }
}

/** Walks an object's members, calling `visit` for each; returns the index after the closing brace. */
function members(b: Uint8Array, start: number, visit: Visit): number {
  let i = ws(b, start + 1);
  if (b[i] === CLOSE_OBJECT) return i + 1;
  for (;;) {
    if (b[i] !== QUOTE) throw GIVE_UP;
    const keyEnd = stringEnd(b, i);
    // A key written with escapes could spell one of the keys this scanner looks for.
    if (escaped) throw GIVE_UP;
    const keyStart = i + 1;
    i = ws(b, keyEnd);
    if (b[i] !== COLON) throw GIVE_UP;
    const valueEnd = visit(keyStart, keyEnd - 1, ws(b, i + 1));
    i = ws(b, valueEnd);
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    if (b[i] === CLOSE_OBJECT) return i + 1;
    throw GIVE_UP;
  }
}

/** The index after the value starting at `i` (brackets counted, strings skipped). */
function skipValue(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === QUOTE) return stringEnd(b, i);
  if (c !== OPEN_OBJECT && c !== OPEN_ARRAY) {
    let j = i;
    while (j < b.length && isLiteralByte(b[j] as number)) j++;
    if (j === i) throw GIVE_UP;
    return j;
  }
  // The hot loop: strings are walked inline (no call per string). Brackets are counted, not
  // matched by type: a nested mismatch is not JSON, and every client refuses the whole body.
  let depth = 0;
  const n = b.length;
  for (let j = i; j < n; j++) {
    const d = b[j] as number;
    if (d === QUOTE) {
      j++;
      while (j < n) {
        const e = b[j] as number;
        if (e === QUOTE) break;
        if (e === BACKSLASH) j++;
        j++;
      }
    } else if (d === OPEN_OBJECT || d === OPEN_ARRAY) depth++;
    else if (d === CLOSE_OBJECT || d === CLOSE_ARRAY) {
      if (--depth === 0) return j + 1;
    } else if (d === SLASH) {
      // Not JSON, but a comment to a JSONC/JSON5 client, which could hide a quote from this count.
      throw GIVE_UP;
    }
  }
  throw GIVE_UP;
}

/** Whether the last string stringEnd() walked held an escape. */
let escaped = false;

/** The index after the closing quote of the string starting at `i`. */
function stringEnd(b: Uint8Array, i: number): number {
  escaped = false;
  const n = b.length;
  for (let j = i + 1; j < n; j++) {
    const d = b[j] as number;
    if (d === QUOTE) return j + 1;
    if (d === BACKSLASH) {
      escaped = true;
      j++;
    }
  }
  throw GIVE_UP;
}

function readString(b: Uint8Array, start: number, end: number): string {
  for (let k = start + 1; k < end - 1; k++) {
    // A raw control character is not JSON: let the parsed path refuse it.
    if ((b[k] as number) < 0x20) throw GIVE_UP;
    if (b[k] === BACKSLASH) {
      try {
        return JSON.parse(decoder.decode(b.subarray(start, end))) as string;
      } catch {
        throw GIVE_UP;
      }
    }
  }
  try {
    return decoder.decode(b.subarray(start + 1, end - 1));
  } catch {
    throw GIVE_UP;
  }
}

/** The id, or null for one the plan cannot hold (not a string or number). */
function parseId(b: Uint8Array, start: number, end: number): JsonRpcId | null {
  let id: unknown;
  try {
    id = JSON.parse(decoder.decode(b.subarray(start, end)));
  } catch {
    throw GIVE_UP;
  }
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

function isLiteralByte(c: number): boolean {
  // digits, letters of true/false/null and exponents, sign and decimal point
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x2d ||
    c === 0x2b ||
    c === 0x2e ||
    c === 0x45
  );
}

/**
 * Filters a `tools/list` or `prompts/list` response without parsing it whole. A page of 1,000 tools
 * is ~660 KiB: JSON.parse and JSON.stringify of it cost ~4 ms, while this scanner walks the bytes
 * once, reads only each entry's `name`, and copies the kept entries' bytes as they are.
 *
 * It is a fast path, never the authority: whenever the body is not the plain shape it expects
 * (a batch, a key written with escapes, a duplicated `result`, `tools` or `name` key, a misplaced
 * bracket or comma in the levels it walks, anything after the value) it returns undefined and the caller filters with JSON.parse,
 * which also refuses what is not JSON. So a body this scanner accepts is filtered exactly as the
 * parsed path would filter it (a property test holds the two together).
 */
import type { JsonRpcId } from '../jsonrpc/message.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** Thrown inside the scanner when the body is not the expected plain shape; caught below. */
const GIVE_UP = Symbol('give up');
const decoder = new TextDecoder();

export type FastKind = 'tools' | 'prompts';

export interface FastListOptions {
  /** The list kind planned for a response id, if any. */
  readonly kindFor: (id: JsonRpcId) => string | undefined;
  readonly keep: (kind: FastKind, name: string) => boolean;
  readonly learn?: ((toolName: string) => void) | undefined;
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

/** Whether the key whose text (without quotes) is b[start, end) is `key`. */
function keyIs(b: Uint8Array, start: number, end: number, key: Buffer): boolean {
  if (end - start !== key.length) return false;
  for (let k = 0; k < key.length; k++) if (b[start + k] !== key[k]) return false;
  return true;
}

type Visit = (keyStart: number, keyEnd: number, valueStart: number, valueEnd: number) => void;

function scan(b: Uint8Array, options: FastListOptions): Uint8Array | undefined {
  let i = ws(b, 0);
  if (b[i] !== OPEN_OBJECT) return undefined;
  let idStart = -1;
  let idEnd = -1;
  let resultStart = -1;
  const end = members(b, i, (ks, ke, vs, ve) => {
    if (keyIs(b, ks, ke, KEY_ID)) {
      if (idStart !== -1) throw GIVE_UP;
      idStart = vs;
      idEnd = ve;
    } else if (keyIs(b, ks, ke, KEY_RESULT)) {
      if (resultStart !== -1) throw GIVE_UP;
      resultStart = vs;
    } else if (keyIs(b, ks, ke, KEY_METHOD)) throw GIVE_UP;
  });
  if (ws(b, end) !== b.length) return undefined;
  // Not a response with a result and an id: nothing the plan filters.
  if (resultStart === -1 || idStart === -1) return b;
  const id = parseId(b, idStart, idEnd);
  if (id === null) return b;
  const kind = options.kindFor(id);
  if (kind === undefined) return b;
  if (kind !== 'tools' && kind !== 'prompts') return undefined;
  if (b[resultStart] !== OPEN_OBJECT) return undefined;
  const kindKey = KEY_KIND[kind];
  let arrayStart = -1;
  let arrayEnd = -1;
  members(b, resultStart, (ks, ke, vs, ve) => {
    if (!keyIs(b, ks, ke, kindKey)) return;
    if (arrayStart !== -1) throw GIVE_UP;
    arrayStart = vs;
    arrayEnd = ve;
  });
  if (arrayStart === -1) return b;
  if (b[arrayStart] !== OPEN_ARRAY) return undefined;
  const learn = kind === 'tools' ? options.learn : undefined;
  const kept: number[] = [];
  let removed = false;
  let nameStart = -1;
  let nameEnd = -1;
  const findName: Visit = (ks, ke, vs, ve) => {
    if (!keyIs(b, ks, ke, KEY_NAME)) return;
    if (nameStart !== -1) throw GIVE_UP;
    nameStart = vs;
    nameEnd = ve;
  };
  i = ws(b, arrayStart + 1);
  if (b[i] !== CLOSE_ARRAY) {
    for (;;) {
      let elementEnd: number;
      let name: string | undefined;
      if (b[i] === OPEN_OBJECT) {
        nameStart = -1;
        elementEnd = members(b, i, findName);
        if (nameStart !== -1 && b[nameStart] === QUOTE) name = readString(b, nameStart, nameEnd);
      } else elementEnd = skipValue(b, i);
      if (name !== undefined) learn?.(name);
      if (name !== undefined && options.keep(kind, name)) kept.push(i, elementEnd);
      else removed = true;
      i = ws(b, elementEnd);
      if (b[i] === COMMA) {
        i = ws(b, i + 1);
        continue;
      }
      if (b[i] === CLOSE_ARRAY) break;
      throw GIVE_UP;
    }
  }
  if (i !== arrayEnd - 1) throw GIVE_UP;
  if (!removed) return b;
  // The kept entries' bytes, as they are, between the untouched head and tail of the body.
  let size = arrayStart + 1 + (b.length - (arrayEnd - 1)) + Math.max(0, kept.length / 2 - 1);
  for (let k = 0; k < kept.length; k += 2) size += (kept[k + 1] as number) - (kept[k] as number);
  const out = Buffer.allocUnsafe(size);
  out.set(b.subarray(0, arrayStart + 1), 0);
  let at = arrayStart + 1;
  for (let k = 0; k < kept.length; k += 2) {
    if (k > 0) out[at++] = COMMA;
    const part = b.subarray(kept[k] as number, kept[k + 1] as number);
    out.set(part, at);
    at += part.length;
  }
  out.set(b.subarray(arrayEnd - 1), at);
  return out;
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
    const valueStart = ws(b, i + 1);
    const valueEnd = skipValue(b, valueStart);
    visit(keyStart, keyEnd - 1, valueStart, valueEnd);
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
  return decoder.decode(b.subarray(start + 1, end - 1));
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

function ws(b: Uint8Array, i: number): number {
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

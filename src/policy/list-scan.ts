/**
 * One strict pass over a `tools/list` or `prompts/list` response: the body is validated as JSON
 * (jsonrpc/strict-skip.ts; nothing is built) while the few places a rule reads are located: the
 * top-level `id`, the `tools` and `prompts` arrays of `result`, each entry's extent and its `name`.
 * Keys are compared as JSON.parse reads them (`"\u006eame"` is `name`).
 *
 * It answers only for the plain shape: one response object whose id, result, lists and names each
 * occur once. Anything else that is JSON (a batch, a request, an error, a repeated key a rule would
 * read, a subscription id in `result._meta`, a list that is not an array, nesting past MAX_DEPTH, a
 * byte order mark) is OTHER: the caller takes the parsed path, which reads it in full. Bytes that
 * are not JSON or not UTF-8 are NOT_JSON.
 */
import { isUtf8 } from 'node:buffer';
import {
  afterKey,
  CLOSE_ARRAY,
  CLOSE_OBJECT,
  COMMA,
  escaped,
  NOT_JSON,
  OPEN_ARRAY,
  OPEN_OBJECT,
  QUOTE,
  string,
  TOO_DEEP,
  useWords,
  value,
  ws,
} from '../jsonrpc/strict-skip.ts';
import { ENTRY_MEMBERS, isVariantAt, LIST_RESULT_MEMBERS, MESSAGE_MEMBERS } from './case-variants.ts';
import { bytesAre } from '../integrity/plain-members.ts';

export { NOT_JSON } from '../jsonrpc/strict-skip.ts';
/** Valid JSON, but not the plain shape this scanner answers for. */
export const OTHER = Symbol('other shape');

export type ScannedKind = 'tools' | 'prompts';

/** A list array: its `[` and the index after its `]`, and per entry [start, end, nameStart, nameEnd]. */
export interface ScannedList {
  readonly open: number;
  readonly end: number;
  /** nameStart is -1 when the entry is not an object or has no `name`. */
  readonly items: readonly number[];
  /**
   * Each entry's name as a string once a reader decoded it (null: not a string), by entry index;
   * filled by the reader, and shared by the remembered scans of the same bytes (list-scan-memo.ts).
   */
  readonly names: (string | null | undefined)[];
}

export interface ListResponse {
  /** The id value's extent (always a JSON string). */
  readonly idStart: number;
  readonly idEnd: number;
  readonly tools: ScannedList | undefined;
  readonly prompts: ScannedList | undefined;
}

const SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Other extends Error {}
const GIVE_UP = new Other('other shape');

/** Scans `b`; returns where a rule reads, OTHER or NOT_JSON (never throws for any input). */
export function scanListResponse(b: Uint8Array): ListResponse | typeof OTHER | typeof NOT_JSON {
  if (!isUtf8(b)) return NOT_JSON;
  useWords(b);
  try {
    return scan(b);
  } catch (err) {
    if (err === NOT_JSON) return NOT_JSON;
    if (err === GIVE_UP || err === TOO_DEEP) return OTHER;
    throw err;
  } finally {
    useWords(undefined);
  }
}

function scan(b: Uint8Array): ListResponse | typeof OTHER {
  // A byte order mark: the parsed path's decoder drops it.
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return OTHER;
  const start = ws(b, 0);
  if (b[start] !== OPEN_OBJECT) {
    // A batch or a scalar: valid or not, the parsed path decides.
    if (ws(b, value(b, start, 0)) !== b.length) throw NOT_JSON;
    return OTHER;
  }
  let idStart = -1;
  let idEnd = -1;
  let result = -1;
  let tools: ScannedList | undefined;
  let prompts: ScannedList | undefined;
  let other = false;
  let scoped = false;
  let ttl = false;
  const end = members(b, start, (key, vs, ks) => {
    if (key === 'id') {
      if (idStart !== -1) other = true;
      idStart = vs;
      return (idEnd = value(b, vs, 1));
    }
    if (key === 'result') {
      if (result !== -1 || b[vs] !== OPEN_OBJECT) other = true;
      result = vs;
      if (b[vs] !== OPEN_OBJECT) return value(b, vs, 1);
      return members(b, vs, (k, v, ks) => {
        // A key a case-folding client reads as a list (`"Tools"`): the parsed path drops it.
        if (k === undefined && isVariantAt(b, ks, string(b, ks), LIST_RESULT_MEMBERS)) other = true;
        if (k === 'tools' || k === 'prompts') {
          if ((k === 'tools' ? tools : prompts) !== undefined || b[v] !== OPEN_ARRAY) other = true;
          if (b[v] !== OPEN_ARRAY) return value(b, v, 2);
          const list = entries(b, v);
          if (k === 'tools') tools = list;
          else prompts = list;
          return list.end;
        }
        // A cursor the parsed path seals, another kind's list it drops (filter-list.ts).
        if (k === 'nextCursor' || k === 'resources' || k === 'resourceTemplates' || k === 'tasks')
          other = true;
        // A caching scope it makes "private", unless it is spelled so.
        if (k === 'cacheScope') {
          const end = value(b, v, 2);
          // (Only `"private"` spelled without an escape.)
          if (!bytesAre(b, v, end, '"private"')) other = true;
          scoped = true;
          return end;
        }
        // A ttl without a scope: the parsed path adds "private".
        if (k === 'ttlMs') ttl = true;
        if (k === '_meta' && b[v] === OPEN_OBJECT) {
          return members(b, v, (mk, mv) => {
            if (mk === SUBSCRIPTION_ID) other = true;
            return value(b, mv, 3);
          });
        }
        return value(b, v, 2);
      });
    }
    if (key === 'method' || key === 'error') other = true;
    // `"Result"`: the parsed path refuses the message (integrity/restore.ts).
    if (key === undefined && isVariantAt(b, ks, string(b, ks), MESSAGE_MEMBERS)) other = true;
    return value(b, vs, 1);
  });
  if (ws(b, end) !== b.length) throw NOT_JSON;
  if (ttl && !scoped) other = true;
  if (other || result === -1 || idStart === -1 || b[idStart] !== QUOTE) return OTHER;
  return { idStart, idEnd, tools, prompts };
}

/** Walks the list array whose `[` is at `open`, recording each entry. */
function entries(b: Uint8Array, open: number): ScannedList {
  const items: number[] = [];
  let nameStart = -1;
  let nameEnd = -1;
  const visit = (key: string | undefined, vs: number, ks: number): number => {
    // `"namE"`: the parsed path drops the entry (a case-folding client reads it as the name).
    if (key === undefined && isVariantAt(b, ks, string(b, ks), ENTRY_MEMBERS.name)) throw GIVE_UP;
    const ve = value(b, vs, 4);
    if (key === 'name') {
      if (nameStart !== -1) throw GIVE_UP;
      nameStart = vs;
      nameEnd = ve;
    }
    return ve;
  };
  let i = ws(b, open + 1);
  if (b[i] === CLOSE_ARRAY) return { open, end: i + 1, items, names: [] };
  for (;;) {
    nameStart = -1;
    const end = b[i] === OPEN_OBJECT ? members(b, i, visit) : value(b, i, 3);
    items.push(i, end, nameStart, nameEnd);
    i = ws(b, end);
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    if (b[i] === CLOSE_ARRAY) return { open, end: i + 1, items, names: [] };
    throw NOT_JSON;
  }
}

/**
 * Walks the members of the object whose `{` is at `start`; `visit` gets each key (undefined when
 * it cannot be one the caller looks for), its value's start and where the key's quote is, and
 * returns the index after the value. Returns the index after the `}`.
 */
function members(
  b: Uint8Array,
  start: number,
  visit: (key: string | undefined, vs: number, ks: number) => number,
): number {
  let i = ws(b, start + 1);
  if (b[i] === CLOSE_OBJECT) return i + 1;
  for (;;) {
    const vs = afterKey(b, i);
    i = ws(b, visit(keyOf(b, i), vs, i));
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    if (b[i] === CLOSE_OBJECT) return i + 1;
    throw NOT_JSON;
  }
}

const KEYS = [
  'id',
  'result',
  'method',
  'error',
  'tools',
  'prompts',
  '_meta',
  'name',
  SUBSCRIPTION_ID,
  'nextCursor',
  'resources',
  'resourceTemplates',
  'tasks',
  'cacheScope',
  'ttlMs',
];
const KEY_BYTES = KEYS.map((k) => Buffer.from(k));
/** Longest raw text of a key this scanner looks for (each character escaped as `\uXXXX`). */
const LONGEST_KEY = SUBSCRIPTION_ID.length * 6;

/**
 * The key whose quote is at `i`, as JSON.parse reads it, when it is one this scanner looks for;
 * else undefined. Plain keys are compared byte by byte (no string is made).
 */
function keyOf(b: Uint8Array, i: number): string | undefined {
  const end = string(b, i);
  const length = end - i - 2;
  if (escaped) {
    if (length > LONGEST_KEY) return undefined;
    const key = JSON.parse(decoder.decode(b.subarray(i, end))) as string;
    return KEYS.includes(key) ? key : undefined;
  }
  for (let k = 0; k < KEY_BYTES.length; k++) {
    const key = KEY_BYTES[k] as Buffer;
    if (key.length !== length) continue;
    let same = true;
    for (let j = 0; j < length && same; j++) same = b[i + 1 + j] === key[j];
    if (same) return KEYS[k];
  }
  return undefined;
}

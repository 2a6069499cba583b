/**
 * Whether JSON.parse read every object key as the bytes spell it. V8's JSON.parse (Node 24 and 26;
 * not Node 22) can read a key spelled with an escape as a key it met before in the same place of
 * an object (after the same keys, in any earlier body): it compares the bytes with that earlier
 * key's characters, escapes and all, and the lengths once decoded. After `{"q":1,"n\\u0":1}`, the
 * key of `{"q":1,"n\u0061me":2}` comes out as `n\u0`, so a body
 * `{"q":1,"name":"echo","n\u0061me":"rm_rf"}` was judged as calling echo, and forwarded (the `\u`
 * escape spelled plainly) as `"name":"echo","name":"rm_rf"`: rm_rf to the upstream, which keeps
 * the last. Any escape will do (`"path\/"` is read as `path\` after `"path\\"`), not only `\"`.
 *
 * Such a misread key always holds a backslash (the earlier key matched the bytes up to the
 * escape's backslash), so only a body with a key spelled with an escape whose parsed value holds a
 * key with a backslash is checked here (scan.ts keyEscape, tree.ts backslashKey): the text
 * JSON.parse read is walked along the parsed value, each key decoded on its own (unescape.ts, not
 * JSON.parse), and each object must hold exactly the keys its bytes spell. A key repeated in an
 * object fails the check too (the members it replaced cannot be paired with the value), which only
 * refuses a body that also has a key holding a backslash.
 */
import {
  CLOSE_ARRAY,
  CLOSE_OBJECT,
  COLON,
  COMMA,
  OPEN_ARRAY,
  OPEN_OBJECT,
  QUOTE,
  escaped,
  NOT_JSON,
  scalar,
  string,
  ws,
} from './strict-skip.ts';
import { spellsAt, unescapeString } from './unescape.ts';

interface Frame {
  /** The parsed object or array these bytes stand for. */
  readonly node: Record<string, unknown> | unknown[];
  /**
   * Objects whose keys are paired by position: the parsed object's own keys, in order, which the
   * members' keys must spell one by one (see `ordered`).
   */
  readonly names: string[] | undefined;
  /** Other objects: the keys read so far, decoded. */
  readonly keys: Set<string> | undefined;
  /** Arrays: the elements read so far; objects: the members. */
  elements: number;
  /** Objects, when a repeated key keeps its last member: the members a later one replaced. */
  readonly replaced: Set<number> | undefined;
}

/**
 * @param text the bytes JSON.parse accepted (the skeleton when long strings were left out: a
 *   placeholder is a string in both)
 * @param value what it returned (placeholders given back or not: keys are unchanged)
 */
export function keysAsSpelled(text: Buffer, value: unknown, lastWins = false): boolean {
  try {
    return walk(text, value, lastWins);
  } catch (err) {
    // Not JSON as strict-skip.ts reads it: never the case for bytes JSON.parse accepted.
    if (err === NOT_JSON) return false;
    throw err;
  } finally {
    if (SPELLED.size !== 0) SPELLED.clear();
  }
}

/** Names at least this long are remembered with a spelling that was checked (SPELLED). */
const LONG_NAME = 16;
/** At most this many names are remembered per walk (the bound of its memory). */
const REMEMBERED = 256;
/**
 * For a long name, where in the text the walk found a key that spells it: the offset of its
 * opening quote and the length of its spelling. A key spelled with the very same bytes spells
 * the same name, so it is compared with those bytes in one call, not read unit by unit (a body
 * of objects with the same long keys costs ~250 ns less per key). Cleared after each walk.
 */
const SPELLED = new Map<string, { readonly at: number; readonly length: number }>();

/** The index after the key at `i` (its opening quote) when it spells `name`, else -1. */
function keyEnd(text: Buffer, i: number, name: string): number {
  if (name.length < LONG_NAME) return spellsAt(text, i, name);
  const seen = SPELLED.get(name);
  if (seen !== undefined) {
    // The same bytes, then the closing quote: the earlier spelling's escapes are whole, so this
    // quote is not one of them.
    const start = i + 1;
    const end = start + seen.length;
    if (
      end < text.length &&
      text[end] === QUOTE &&
      text.compare(text, seen.at + 1, seen.at + 1 + seen.length, start, end) === 0
    )
      return end + 1;
    return spellsAt(text, i, name);
  }
  const end = spellsAt(text, i, name);
  if (end !== -1 && SPELLED.size < REMEMBERED) SPELLED.set(name, { at: i, length: end - i - 2 });
  return end;
}

/**
 * @param lastWins a repeated key stands for its last member, as JSON.parse keeps it (the others
 *   are not paired with the value); else a repeated key fails the check
 */
function walk(text: Buffer, value: unknown, lastWins: boolean): boolean {
  const frames: Frame[] = [];
  let node: unknown = value;
  let i = ws(text, 0);
  for (;;) {
    // text[i] starts a value, which the parse made `node`.
    let c = text[i] as number;
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const object = c === OPEN_OBJECT;
      if (typeof node !== 'object' || node === null || Array.isArray(node) === object) return false;
      i = ws(text, i + 1);
      const replaced = object && lastWins ? replacedMembers(text, i) : undefined;
      const names = object && replaced === undefined ? ordered(node as object) : undefined;
      const frame: Frame = {
        node: node as Record<string, unknown> | unknown[],
        names,
        keys: object && names === undefined ? new Set() : undefined,
        elements: 0,
        replaced,
      };
      frames.push(frame);
      if (text[i] !== (object ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        const next = member(text, i, frame);
        if (next === undefined) return false;
        [i, node] = next;
        continue;
      }
      if (!closes(frame)) return false;
      frames.pop();
      i++;
    } else i = scalar(text, i);
    // After a value: close what ends here, or go on to the next member or element.
    for (;;) {
      const frame = frames[frames.length - 1];
      if (frame === undefined) return true;
      i = ws(text, i);
      c = text[i] as number;
      if (c === COMMA) {
        const next = member(text, ws(text, i + 1), frame);
        if (next === undefined) return false;
        [i, node] = next;
        break;
      }
      if (!closes(frame)) return false;
      frames.pop();
      i++;
    }
  }
}

/**
 * The member or element of `frame` at `i`: where its value starts and what the parse made of it;
 * undefined when the parsed object lacks the key as spelled, or the key repeats.
 */
function member(text: Buffer, i: number, frame: Frame): [number, unknown] | undefined {
  const names = frame.names;
  if (names !== undefined) {
    const name = names[frame.elements++];
    if (name === undefined) return undefined;
    const end = keyEnd(text, i, name);
    if (end === -1) return undefined;
    i = ws(text, end);
    if (text[i] !== COLON) return undefined;
    return [ws(text, i + 1), (frame.node as Record<string, unknown>)[name]];
  }
  const keys = frame.keys;
  if (keys === undefined) return [i, (frame.node as unknown[])[frame.elements++]];
  const node = frame.node as Record<string, unknown>;
  for (;;) {
    const end = string(text, i);
    const key = keyAt(text, i, end);
    i = ws(text, end);
    if (text[i] !== COLON) return undefined;
    i = ws(text, i + 1);
    if (frame.replaced?.has(frame.elements++) !== true) {
      if (keys.has(key) || !Object.hasOwn(node, key)) return undefined;
      keys.add(key);
      return [i, node[key]];
    }
    // A later member with this key replaced this one: JSON.parse built nothing of it.
    i = ws(text, skip(text, i));
    if (text[i] !== COMMA) return undefined;
    i = ws(text, i + 1);
  }
}

/**
 * The key whose quotes are at `i` and `end - 1`, decoded on its own; called right after string()
 * read it (`escaped` is about the string read last).
 */
function keyAt(text: Buffer, i: number, end: number): string {
  return escaped ? unescapeString(text, i + 1, end - 1) : text.toString('utf8', i + 1, end - 1);
}

/**
 * The object's own keys in order, when that order is its members' order: JSON.parse adds each key
 * where the bytes first spell it, and an object lists its keys in the order they were added, but
 * for those that are array indices (listed first, in numeric order). So an object with a key that
 * starts with a digit is paired by name instead (undefined). Pairing by position needs no set of
 * keys and no lookup by a decoded key: a repeated key, or one read as another, makes some member's
 * key differ from the name at its place, or the count differ.
 */
function ordered(node: object): string[] | undefined {
  const names = Object.keys(node);
  for (let k = 0; k < names.length; k++) {
    const c = (names[k] as string).charCodeAt(0);
    if (c >= 0x30 && c <= 0x39) return undefined;
  }
  return names;
}

/**
 * The members of the object whose first member (or `}`) is at `i` that a later member with the
 * same key replaces, by index; undefined when no key repeats (the common case).
 */
function replacedMembers(text: Buffer, i: number): Set<number> | undefined {
  if (text[i] === CLOSE_OBJECT) return undefined;
  const seen = new Map<string, number>();
  let replaced: Set<number> | undefined;
  for (let k = 0; ; k++) {
    const end = string(text, i);
    const key = keyAt(text, i, end);
    const earlier = seen.get(key);
    if (earlier !== undefined) (replaced ??= new Set()).add(earlier);
    seen.set(key, k);
    i = ws(text, end);
    if (text[i] !== COLON) throw NOT_JSON;
    i = ws(text, skip(text, ws(text, i + 1)));
    if (text[i] !== COMMA) return replaced;
    i = ws(text, i + 1);
  }
}

/** The index after the value at `i`, however deep (bytes JSON.parse accepted: brackets balance). */
function skip(text: Buffer, i: number): number {
  let c = text[i];
  if (c !== OPEN_OBJECT && c !== OPEN_ARRAY) return scalar(text, i);
  let depth = 0;
  for (;;) {
    c = text[i];
    if (c === QUOTE) i = string(text, i);
    else {
      if (c === OPEN_OBJECT || c === OPEN_ARRAY) depth++;
      else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
      else if (c === undefined) throw NOT_JSON;
      i++;
      if (depth === 0) return i;
    }
  }
}

/** Whether the parsed container holds no more than its bytes spelled. */
function closes(frame: Frame): boolean {
  if (frame.names !== undefined) return frame.names.length === frame.elements;
  if (frame.keys === undefined) return (frame.node as unknown[]).length === frame.elements;
  return Object.keys(frame.node).length === frame.keys.size;
}

const BACKSLASH = 0x5c;

/**
 * The same check for a parse whose bytes no pre-scan read (the upstream's answers, a list entry
 * being pinned): whether JSON.parse read every key of `text` as spelled. A misread takes two
 * backslashes, one in the bytes (where the real key's escape begins) and one in a key of the value
 * (the earlier key it was read as), so text without a backslash, or a value without such a key,
 * is not walked. Unlike a request body, an answer can prime the misread on its own: an object
 * with the same first keys built earlier in the same parse (an inner one, an earlier member's
 * value) is enough. And a parse that read some bytes as spelled says nothing of the next parse of
 * them: it may build, after the key, the object that makes the next one misread it. So each parse
 * whose reading decides what passes is checked, not only the first.
 */
export function parsedAsSpelled(text: Buffer | string, value: unknown): boolean {
  if (typeof text === 'string' ? !text.includes('\\') : text.indexOf(BACKSLASH) === -1) return true;
  if (!holdsBackslashKey(value)) return true;
  return keysAsSpelled(typeof text === 'string' ? Buffer.from(text) : text, value, true);
}

/** Whether some object in `value` has a key holding a backslash (iterative: any depth). */
function holdsBackslashKey(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: object[] = [value];
  while (stack.length > 0) {
    const v = stack.pop() as object;
    if (Array.isArray(v)) {
      for (const item of v as unknown[]) if (typeof item === 'object' && item !== null) stack.push(item);
      continue;
    }
    for (const key in v) {
      if (key.includes('\\')) return true;
      const item = (v as Record<string, unknown>)[key];
      if (typeof item === 'object' && item !== null) stack.push(item);
    }
  }
  return false;
}

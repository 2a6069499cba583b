/**
 * The keys of the objects the arguments walk (unread-spans.ts) reads, as the walk over the parsed
 * value would see them (tree.ts): a repeated key, two keys equal under case folding, `__proto__`
 * however spelled. A key spelled with an escape is decoded on its own (unescape.ts, as a string
 * value: JSON.parse never takes a string value for an earlier one, key-check.ts).
 *
 * Keys are compared as bytes while none of the object's is spelled with an escape (without escapes,
 * two keys are the same exactly when their bytes are: the body is valid UTF-8), else decoded; in
 * turn while the object has few, then looked up in a Map. The tables are a stack shared by the open
 * objects and reused from body to body; one record per depth.
 */
import { foldKey, mayFold } from './tree.ts';
import { unescapeString } from './unescape.ts';

/** Something the walk over the parsed value must see: leave the arguments in JSON.parse. */
export const KEEP = Symbol('keep');

/**
 * An open object's keys so far, each an entry of the key tables below (from `base`, `count` of
 * them), and the entry of the member being read; `countedAt` and `droppedAt` are the caller's (the
 * values counted and dropped before that member's key).
 */
export interface Keys {
  checked: boolean;
  base: number;
  count: number;
  current: number;
  countedAt: number;
  droppedAt: number;
  foldable: boolean;
  /** Whether the keys are compared decoded (one is spelled with an escape). */
  texts: boolean;
  lookup: Map<string, number> | undefined;
}

/** Keys an object may hold before they are looked up instead of compared in turn. */
const COMPARED = 8;

/**
 * The key tables: each key's bytes between its quotes, its decoded text (once decoded), and the
 * values its latest member held (the caller's count; known once the next key comes).
 */
let keyStart = new Int32Array(256);
let keyEnd = new Int32Array(256);
let keyHeld = new Int32Array(256);
const keyText: (string | undefined)[] = [];
/** Where the next object's keys start in the tables. */
let keyTop = 0;
/** One record per depth of the walk. */
const records: Keys[] = [];
/** The walked body as 32-bit words, when its bytes are 4-aligned in memory. */
let words: Uint32Array | undefined;

/** Before a walk of `b`. */
export function startKeys(b: Buffer): void {
  words = b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length >> 2) : undefined;
  keyTop = 0;
  memoStart.fill(-1);
}

/** After it, however it ended: lets go of the body and of the keys' texts. */
export function endKeys(): void {
  words = undefined;
  keyText.length = 0;
  memoText.fill(undefined);
  for (const keys of records) keys.lookup = undefined;
}

/** The reused record of the object opened `open` levels into the walk. */
export function keysAt(open: number, checked: boolean): Keys {
  while (records.length <= open) {
    records.push({
      checked: false,
      base: 0,
      count: 0,
      current: 0,
      countedAt: 0,
      droppedAt: 0,
      foldable: false,
      texts: false,
      lookup: undefined,
    });
  }
  const keys = records[open] as Keys;
  keys.checked = checked;
  keys.base = keyTop;
  keys.count = 0;
  keys.foldable = false;
  keys.texts = false;
  keys.lookup = undefined;
  return keys;
}

/** Notes what the member of the key at `entry` held. */
export function setHeld(entry: number, values: number): void {
  keyHeld[entry] = values;
}

/** What the latest member of the key at `entry` held. */
export function heldBy(entry: number): number {
  return keyHeld[entry] as number;
}

/**
 * Adds the key whose bytes between its quotes are [start, end) (`escaped`: spelled with an escape)
 * to `keys`, and makes its entry the current one: the entry of the same key met before in the
 * object, or -1 for a new key. Throws KEEP on a key `__proto__` or `prototype`.
 */
export function addKey(b: Buffer, keys: Keys, start: number, end: number, escaped: boolean): number {
  let text = escaped ? decode(b, start, end) : undefined;
  // A part with a `prototype` key is kept too: the walk over the parsed value refuses a `constructor`
  // object holding one (tree.ts), which a part left out would hide from it.
  if (
    text !== undefined
      ? text === '__proto__' || text === 'prototype'
      : isBytes(b, start, end, PROTO) || isBytes(b, start, end, PROTOTYPE)
  )
    throw KEEP;
  if (!keys.foldable && (text !== undefined ? decodedFolds : mayFoldBytes(b, start, end)))
    keys.foldable = true;
  // Compared decoded from the first escaped key on, and looked up past a few keys.
  if (text !== undefined && !keys.texts) decodeAll(b, keys);
  if (keys.texts) text ??= b.toString('utf8', start, end);
  if (keys.count >= COMPARED && keys.lookup === undefined) lookUp(b, keys);
  const name = keys.lookup === undefined ? undefined : (text ?? b.toString('latin1', start, end));
  if (keys.count > 0) {
    const earlier =
      name !== undefined
        ? ((keys.lookup as Map<string, number>).get(name) ?? -1)
        : text !== undefined
          ? sameText(keys, text)
          : sameBytes(b, keys, start, end);
    if (earlier !== -1) {
      keys.current = earlier;
      return earlier;
    }
  }
  const e = keyTop++;
  if (e === keyStart.length) grow();
  keyStart[e] = start;
  keyEnd[e] = end;
  keyText[e] = text;
  keys.count++;
  if (name !== undefined) (keys.lookup as Map<string, number>).set(name, e);
  keys.current = e;
  return -1;
}

/** Escaped keys at least this long are remembered by their bytes for the walk (the memo below). */
const LONG_KEY = 16;
/** Entries of the memo (a power of two). */
const MEMO = 64;
/**
 * Escaped keys decoded in this walk, direct-mapped by their length and end bytes: where their
 * bytes are, their text, and mayFold's answer. Arguments holding many records with the same
 * long keys decode each spelling once; a key with other bytes takes the slot over. Reset for
 * each walk.
 */
const memoStart = new Int32Array(MEMO).fill(-1);
const memoEnd = new Int32Array(MEMO);
const memoText: (string | undefined)[] = new Array<string | undefined>(MEMO).fill(undefined);
const memoFolds = new Uint8Array(MEMO);
const memoBackslash = new Uint8Array(MEMO);
/** mayFold's answer for the key decode() returned last. */
let decodedFolds = false;
/** Whether the key decode() returned last holds a backslash (read by unread-spans.ts). */
export let decodedBackslash = false;

/** The text of the escaped key whose bytes between its quotes are [start, end); sets decodedFolds. */
function decode(b: Buffer, start: number, end: number): string {
  const length = end - start;
  if (length < LONG_KEY) {
    const text = unescapeString(b, start, end);
    decodedFolds = mayFold(text);
    decodedBackslash = text.includes('\\');
    return text;
  }
  const slot = (length * 31 + (b[start] as number) * 7 + (b[end - 1] as number)) & (MEMO - 1);
  const at = memoStart[slot] as number;
  if (at !== -1 && (memoEnd[slot] as number) - at === length && sameRun(b, start, at, length)) {
    decodedFolds = memoFolds[slot] === 1;
    decodedBackslash = memoBackslash[slot] === 1;
    return memoText[slot] as string;
  }
  const text = unescapeString(b, start, end);
  decodedFolds = mayFold(text);
  decodedBackslash = text.includes('\\');
  memoStart[slot] = start;
  memoEnd[slot] = end;
  memoText[slot] = text;
  memoFolds[slot] = decodedFolds ? 1 : 0;
  memoBackslash[slot] = decodedBackslash ? 1 : 0;
  return text;
}

/**
 * Whether the `length` bytes at `a` and at `c` are the same, read in JavaScript: the keys compared
 * here are short, and a call to Buffer#compare costs more than reading them (the last bytes
 * first: keys of records often share a prefix and differ at their end).
 */
function sameRun(b: Buffer, a: number, c: number, length: number): boolean {
  if (length === 0) return true;
  if (b[a + length - 1] !== b[c + length - 1]) return false;
  for (let k = 0; k < length; k++) if (b[a + k] !== b[c + k]) return false;
  return true;
}

/** The entry of the object's key spelled with the same bytes, or -1. */
function sameBytes(b: Buffer, keys: Keys, start: number, end: number): number {
  const length = end - start;
  for (let e = keys.base; e < keys.base + keys.count; e++) {
    const s = keyStart[e] as number;
    if ((keyEnd[e] as number) - s === length && sameRun(b, start, s, length)) return e;
  }
  return -1;
}

/** The entry of the object's key that decodes to `text`, or -1. */
function sameText(keys: Keys, text: string): number {
  for (let e = keys.base; e < keys.base + keys.count; e++) if (keyText[e] === text) return e;
  return -1;
}

/** Compares the object's keys decoded from now on. */
function decodeAll(b: Buffer, keys: Keys): void {
  for (let e = keys.base; e < keys.base + keys.count; e++)
    keyText[e] = b.toString('utf8', keyStart[e] as number, keyEnd[e] as number);
  keys.texts = true;
  keys.lookup = undefined;
  if (keys.count >= COMPARED) lookUp(b, keys);
}

/**
 * Looks the object's keys up from now on: by their text once decoded, else by their bytes as
 * latin1 (one character per byte: two keys without escapes are the same exactly when their bytes
 * are).
 */
function lookUp(b: Buffer, keys: Keys): void {
  const lookup = new Map<string, number>();
  for (let e = keys.base; e < keys.base + keys.count; e++)
    lookup.set(
      keys.texts ? (keyText[e] as string) : b.toString('latin1', keyStart[e] as number, keyEnd[e] as number),
      e,
    );
  keys.lookup = lookup;
}

/** Doubles the key tables. */
function grow(): void {
  const size = keyStart.length * 2;
  const start = new Int32Array(size);
  const end = new Int32Array(size);
  const held = new Int32Array(size);
  start.set(keyStart);
  end.set(keyEnd);
  held.set(keyHeld);
  keyStart = start;
  keyEnd = end;
  keyHeld = held;
}

/**
 * At an object's end: throws KEEP when two of its keys are equal under case folding (as tree.ts
 * compares them); gives its entries back.
 */
export function closeKeys(b: Buffer, keys: Keys): void {
  if (!keys.checked) return;
  if (keys.foldable && keys.count > 1) {
    const folded = new Set<string>();
    for (let e = keys.base; e < keys.base + keys.count; e++)
      folded.add(foldKey(keyText[e] ?? b.toString('utf8', keyStart[e] as number, keyEnd[e] as number)));
    if (folded.size < keys.count) throw KEEP;
  }
  for (let e = keys.base; e < keyTop; e++) keyText[e] = undefined;
  keyTop = keys.base;
}

const PROTO = Buffer.from('__proto__');
const PROTOTYPE = Buffer.from('prototype');

/** Whether the bytes [start, end) are `name`. */
function isBytes(b: Buffer, start: number, end: number, name: Buffer): boolean {
  return end - start === name.length && b.compare(name, 0, name.length, start, end) === 0;
}

/**
 * Whether a key's bytes (no escape) may fold with another key's: an upper-case ASCII letter or a
 * byte of a non-ASCII character (tree.ts mayFold, on the decoded key); read four at a time.
 */
function mayFoldBytes(b: Buffer, start: number, end: number): boolean {
  let j = start;
  const w = words;
  if (w !== undefined) {
    while (j < end && (j & 3) !== 0) if (foldByte(b[j++] as number)) return true;
    for (; j + 4 <= end; j += 4) {
      const x = w[j >> 2] as number;
      // A byte of 0x80 or more, or (bytes below 0x80: ~x keeps their high bit) one from 0x41 (adding
      // 0x3f sets the high bit) to 0x5a (0xda minus it keeps the high bit); no byte carries or
      // borrows into the next.
      const t = x & 0x7f7f7f7f;
      if ((x & 0x80808080) !== 0 || ((0xdadadada - t) & ~x & (t + 0x3f3f3f3f) & 0x80808080) !== 0)
        return true;
    }
  }
  for (; j < end; j++) if (foldByte(b[j] as number)) return true;
  return false;
}

function foldByte(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || c >= 0x80;
}

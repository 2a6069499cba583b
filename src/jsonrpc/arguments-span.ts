/**
 * Where each message's `params.arguments` lies in a body, for a parse that leaves them out of
 * JSON.parse when nothing reads them (skeleton.ts; only the audit of arguments and `Mcp-Param-*`
 * checks read them: read-depth.ts). A body of many small arguments (numbers, short strings, keys)
 * is otherwise one 4 MiB text for JSON.parse and a tree of 100,000 values, fresh memory the size of
 * the body each time.
 *
 * Each arguments object or array is read here as JSON.parse would read it (strict-skip.ts: the
 * grammar, string escapes, numbers, the depth limit; its long strings are jumped over and validated
 * by the caller with the others), and it is left out only if the walk over the parsed value would
 * find nothing in it: no two keys that differ only by case, no key `__proto__` (however spelled: a
 * key with an escape is decoded on its own, unescape.ts; the caller leaves out nothing when the body
 * spells `__proto__` plainly). Such keys never reach JSON.parse, so V8 cannot misread them
 * (key-check.ts), and they go upstream as the client spelled them, since no rule reads them. A key
 * repeated in an object is noted (the forwarded bytes then need a splice: splice.ts reads the keys
 * from the bytes), and the values are counted twice: as the pre-scan counts them (so the caller
 * still knows whether a key repeats elsewhere), and as the parsed value would hold them, without the
 * members a repeated key replaced (so the splice can check its count).
 *
 * The messages are the top-level object, or each object of a top-level array; their members are
 * found byte by byte (keys compared as bytes: a `"params"` or `"arguments"` spelled with an escape
 * is not taken for one, and what it holds is left to JSON.parse). Anything else, or bytes that are
 * not JSON, leave out nothing: undefined.
 */
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
  scalar,
  string,
  TOO_DEEP,
  useWords,
  ws,
} from './strict-skip.ts';
import { MAX_DEPTH } from './limits.ts';
import { foldKey, mayFold } from './tree.ts';
import { unescapeString } from './unescape.ts';

/** Something in the arguments the walk over the parsed value must see: leave nothing out. */
const KEEP = Symbol('keep');
/** A lone message's arguments are found: what follows is JSON.parse's to read. */
const DONE = Symbol('done');

const PARAMS = Buffer.from('"params"');
const ARGUMENTS = Buffer.from('"arguments"');

/**
 * Start, end and the two value counts (the pre-scan's, the parsed value's) of each message's
 * `params.arguments` object or array that can be left out, in order (`repeated` tells whether a
 * key repeats in them); undefined when the body is not made of messages that can be read here.
 */
export function argumentsSpans(
  b: Buffer,
  long: readonly number[],
  plain: ArrayLike<number> = NONE,
): number[] | undefined {
  longSpans = long;
  nextLong = 0;
  plainSpans = plain;
  nextPlain = 0;
  repeated = false;
  useWords(b);
  words = b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, b.length >> 2) : undefined;
  keyTop = 0;
  try {
    const out: number[] = [];
    let i = ws(b, 0);
    if (b[i] !== OPEN_ARRAY) {
      try {
        message(b, i, 0, out);
      } catch (err) {
        if (err !== DONE) throw err;
      }
      return out;
    }
    i = ws(b, i + 1);
    if (b[i] === CLOSE_ARRAY) return out;
    for (;;) {
      i = ws(b, message(b, i, 1, out));
      if (b[i] === CLOSE_ARRAY) return out;
      if (b[i] !== COMMA) return undefined;
      i = ws(b, i + 1);
    }
  } catch (err) {
    if (err === NOT_JSON || err === TOO_DEEP || err === KEEP) return undefined;
    throw err;
  } finally {
    useWords(undefined);
    words = undefined;
    keyText.length = 0;
    for (const keys of records) keys.lookup = undefined;
    longSpans = NONE;
    plainSpans = NONE;
  }
}

const NONE: readonly number[] = [];
/** The long value strings the pre-scan found (start and end offsets), and the next one ahead. */
let longSpans = NONE;
let nextLong = 0;
/**
 * The short strings the pre-scan read whole and found valid (scan.ts `plain`), and the next one
 * ahead: a string's extent and validity depend only on the bytes from its opening quote, so one
 * that opens where the pre-scan's did ends where it found, and needs no second read.
 */
let plainSpans: ArrayLike<number> = NONE;
let nextPlain = 0;

/**
 * The index after the string value at `i`: a long one is jumped over (the caller validates it with
 * the other long strings: skeleton.ts), a short one the pre-scan found valid too, any other read by
 * strict-skip.ts.
 */
function stringValue(b: Buffer, i: number): number {
  const spans = longSpans;
  while (nextLong < spans.length && (spans[nextLong] as number) < i) nextLong += 2;
  // (Never read past the end: V8 looks an index it does not hold up on the prototype chain.)
  if (nextLong < spans.length && spans[nextLong] === i) return spans[nextLong + 1] as number;
  const plain = plainSpans;
  while (nextPlain < plain.length && (plain[nextPlain] as number) < i) nextPlain += 2;
  if (nextPlain < plain.length && plain[nextPlain] === i) return plain[nextPlain + 1] as number;
  return string(b, i);
}

/** The index after the message at `i`, which `enclosing` containers enclose; spans go to `out`. */
function message(b: Buffer, i: number, enclosing: number, out: number[]): number {
  if (b[i] !== OPEN_OBJECT) return walk(b, i, enclosing, false);
  i = ws(b, i + 1);
  if (b[i] === CLOSE_OBJECT) return i + 1;
  for (;;) {
    const key = i;
    const at = afterKey(b, i);
    if (isKey(b, key, PARAMS) && b[at] === OPEN_OBJECT) i = params(b, at, enclosing + 1, out);
    else i = walk(b, at, enclosing + 1, false);
    i = ws(b, i);
    if (b[i] === CLOSE_OBJECT) return i + 1;
    if (b[i] !== COMMA) throw NOT_JSON;
    i = ws(b, i + 1);
  }
}

/** The index after the params object at `i`; its arguments' span goes to `out`. */
function params(b: Buffer, i: number, enclosing: number, out: number[]): number {
  i = ws(b, i + 1);
  if (b[i] === CLOSE_OBJECT) return i + 1;
  for (;;) {
    const key = i;
    const at = afterKey(b, i);
    if (isKey(b, key, ARGUMENTS) && (b[at] === OPEN_OBJECT || b[at] === OPEN_ARRAY)) {
      counted = 0;
      dropped = 0;
      i = walk(b, at, enclosing + 1, true);
      out.push(at, i, counted, counted - dropped);
      if (enclosing === 1) throw DONE;
    } else i = walk(b, at, enclosing + 1, false);
    i = ws(b, i);
    if (b[i] === CLOSE_OBJECT) return i + 1;
    if (b[i] !== COMMA) throw NOT_JSON;
    i = ws(b, i + 1);
  }
}

/** Whether the key whose opening quote is at `i` is spelled `name` (quotes included). */
function isKey(b: Buffer, i: number, name: Buffer): boolean {
  return i + name.length <= b.length && b.compare(name, 0, name.length, i, i + name.length) === 0;
}

/** Values counted by walk, as the pre-scan counts them (keys included). */
let counted = 0;
/** Of those, the values in members a later member with the same key replaced. */
let dropped = 0;
/** Whether walk found a key repeated in an object. */
export let repeated = false;

/**
 * An open object's keys so far, each an entry of the key tables below (from `base`, `count` of
 * them), the entry of the member being read, and the values counted (and dropped) before its key.
 * Keys are compared as bytes while none is spelled with an escape (without escapes, two keys are
 * the same exactly when their bytes are: the body is valid UTF-8), else decoded (`texts`); in turn
 * while the object has few, then looked up (`lookup`). One record per depth, reused from object to
 * object.
 */
interface Keys {
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
 * The key tables, a stack shared by the open objects (an object's keys follow those of the objects
 * enclosing it): each key's bytes between its quotes, its decoded text (once decoded), and the values
 * its latest member held (net of what was dropped inside it; known once the next key comes).
 */
let keyStart = new Int32Array(256);
let keyEnd = new Int32Array(256);
let keyHeld = new Int32Array(256);
const keyText: (string | undefined)[] = [];
/** Where the next object's keys start in the tables. */
let keyTop = 0;
/** One record per depth of the walk. */
const records: Keys[] = [];

/** The reused record of the object opened `open` levels into the walk. */
function keysAt(open: number, checked: boolean): Keys {
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

/**
 * The index after the value at `i` (which `enclosing` containers enclose), read as JSON.parse
 * reads it; with `checkKeys`, throws KEEP where the walk over the parsed value would find
 * something in it.
 */
function walk(b: Buffer, i: number, enclosing: number, checkKeys: boolean): number {
  const open: (Keys | undefined)[] = [];
  for (;;) {
    // b[i] starts a value.
    let c = b[i] as number;
    counted++;
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (enclosing + open.length >= MAX_DEPTH) throw TOO_DEEP;
      const keys = c === OPEN_OBJECT ? keysAt(open.length, checkKeys) : undefined;
      open.push(keys);
      i = ws(b, i + 1);
      if (b[i] !== (c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        if (keys !== undefined) i = key(b, i, keys);
        continue;
      }
      if (keys !== undefined) closeKeys(b, keys);
      open.pop();
      i++;
    } else if (c === QUOTE) i = stringValue(b, i);
    else i = scalar(b, i);
    // After a value: close what ends here, or go on to the next member or element.
    for (;;) {
      if (open.length === 0) return i;
      i = ws(b, i);
      c = b[i] as number;
      const keys = open[open.length - 1];
      if (c === COMMA) {
        i = ws(b, i + 1);
        if (keys !== undefined) i = key(b, i, keys);
        break;
      }
      if (c !== (keys !== undefined ? CLOSE_OBJECT : CLOSE_ARRAY)) throw NOT_JSON;
      if (keys !== undefined) closeKeys(b, keys);
      open.pop();
      i++;
    }
  }
}

/**
 * Reads the key at `i` into `keys` (counted; a repeat drops the members the same key had:
 * `dropped`; throws KEEP on a key spelled `__proto__`), unless the object's keys are not checked:
 * its value's index.
 */
function key(b: Buffer, i: number, keys: Keys): number {
  if (b[i] !== QUOTE) throw NOT_JSON;
  const at = afterKey(b, i);
  if (!keys.checked) return at;
  const start = i + 1;
  const end = b.lastIndexOf(QUOTE, at - 1);
  // A key spelled with an escape is decoded on its own, as a string value (JSON.parse never takes a
  // string value for an earlier one: key-check.ts), and its object's keys are then compared decoded.
  let text = escaped ? unescapeString(b, start, end) : undefined;
  if (text !== undefined ? text === '__proto__' : isBytes(b, start, end, PROTO)) throw KEEP;
  if (!keys.foldable && (text !== undefined ? mayFold(text) : mayFoldBytes(b, start, end)))
    keys.foldable = true;
  // Compared decoded from the first escaped key on, and looked up past a few keys.
  if (text !== undefined && !keys.texts) decodeAll(b, keys);
  if (keys.texts) text ??= b.toString('utf8', start, end);
  if (keys.count >= COMPARED && keys.lookup === undefined) lookUp(b, keys);
  const name = keys.lookup === undefined ? undefined : (text ?? b.toString('latin1', start, end));
  if (keys.count > 0) {
    // The member before this key ends here: what it holds, net of what was dropped inside it.
    keyHeld[keys.current] = counted - keys.countedAt - (dropped - keys.droppedAt);
    const earlier =
      name !== undefined
        ? ((keys.lookup as Map<string, number>).get(name) ?? -1)
        : text !== undefined
          ? sameText(keys, text)
          : sameBytes(b, keys, start, end);
    if (earlier !== -1) {
      repeated = true;
      dropped += keyHeld[earlier] as number;
      return member(keys, earlier, at);
    }
  }
  const e = keyTop++;
  if (e === keyStart.length) grow();
  keyStart[e] = start;
  keyEnd[e] = end;
  keyText[e] = text;
  keys.count++;
  if (name !== undefined) (keys.lookup as Map<string, number>).set(name, e);
  return member(keys, e, at);
}

/** Notes the member being read (its key's entry, the values before it), and counts its key. */
function member(keys: Keys, entry: number, at: number): number {
  keys.current = entry;
  keys.countedAt = counted;
  keys.droppedAt = dropped;
  counted++;
  return at;
}

/** The entry of the object's key spelled with the same bytes, or -1. */
function sameBytes(b: Buffer, keys: Keys, start: number, end: number): number {
  const length = end - start;
  for (let e = keys.base; e < keys.base + keys.count; e++) {
    const s = keyStart[e] as number;
    if ((keyEnd[e] as number) - s === length && b.compare(b, start, end, s, s + length) === 0) return e;
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
function closeKeys(b: Buffer, keys: Keys): void {
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

/** Whether the bytes [start, end) are `name`. */
function isBytes(b: Buffer, start: number, end: number, name: Buffer): boolean {
  return end - start === name.length && b.compare(name, 0, name.length, start, end) === 0;
}

/** The walked body as 32-bit words, when its bytes are 4-aligned in memory. */
let words: Uint32Array | undefined;

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

/**
 * Where the parts of a body that no rule reads lie, for a parse that leaves them out of JSON.parse
 * (skeleton.ts). A body of many small values (numbers, short strings, keys) in such a part is
 * otherwise one 4 MiB text for JSON.parse and a tree of 100,000 values, fresh memory the size of the
 * body each time, and then a walk over it, a key check and a splice that re-spells its escapes.
 *
 * What no rule reads (read-depth.ts lists the readers): the object or array value of a message's
 * `params` member other than those PARAMS_READ names, and of a `params._meta` member other than those
 * META_READ names, and `params.arguments` (the caller looks for parts only when nothing reads the
 * arguments: the audit of arguments and `Mcp-Param-*` checks read them, and every number in them). Only a member whose key is spelled plainly (no backslash) is left out: a
 * key spelled with an escape may be one of those names to JSON.parse, and is left to it.
 *
 * Each part is read here as JSON.parse would read it (strict-skip.ts: the grammar, string escapes,
 * numbers, the depth limit; its long strings are jumped over and validated by the caller with the
 * others), and it is left out only if the walk over the parsed value would find nothing in it: no
 * two keys that differ only by case, no key `__proto__` (however spelled: a key with an escape is
 * decoded on its own: object-keys.ts; the caller leaves out nothing when the body spells
 * `__proto__` plainly). Such keys never reach JSON.parse, so V8 cannot misread them (key-check.ts),
 * and they go upstream as the client spelled them, since no rule reads them. A key repeated in an
 * object is noted (the forwarded bytes then need a splice: splice.ts reads the keys from the
 * bytes), and the values are counted twice: as the pre-scan counts them (so the caller still knows
 * whether a key repeats elsewhere), and as the parsed value would hold them, without the members a
 * repeated key replaced (so the splice can check its count).
 *
 * The messages are the top-level object, or each object of a top-level array; their members are
 * found byte by byte (keys compared as bytes: a `"params"` or `"_meta"` spelled with an escape is
 * not taken for one, and what it holds is left to JSON.parse). Anything else, or bytes that are
 * not JSON, leave out nothing: undefined.
 */
import {
  afterKey,
  CLOSE_ARRAY,
  CLOSE_OBJECT,
  COLON,
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
import { META_READ, PARAMS_READ } from './read-depth.ts';
import {
  addKey,
  closeKeys,
  decodedBackslash,
  endKeys,
  heldBy,
  KEEP,
  keysAt,
  setHeld,
  startKeys,
} from './object-keys.ts';
import type { Keys } from './object-keys.ts';

/** A lone message's arguments are found: what follows is JSON.parse's to read. */
const DONE = Symbol('done');

const PARAMS = Buffer.from('"params"');
const ARGUMENTS = Buffer.from('"arguments"');
const META = Buffer.from('"_meta"');
/** The names, quoted as keys are spelled in the bytes. */
const quoted = (names: readonly string[]): Buffer[] => names.map((n) => Buffer.from(JSON.stringify(n)));
const PARAMS_KEYS = quoted(PARAMS_READ);
const META_KEYS = quoted(META_READ);

/**
 * Start, end and the two value counts (the pre-scan's, the parsed value's) of each part no rule
 * reads that can be left out, in order (`repeated` tells whether a key repeats in them); undefined
 * when the body is not made of messages that can be read here.
 */
export function unreadSpans(
  b: Buffer,
  long: readonly number[],
  plain: ArrayLike<number> = NONE,
): number[] | undefined {
  longSpans = long;
  nextLong = 0;
  plainSpans = plain;
  nextPlain = 0;
  repeated = false;
  backslashKey = false;
  useWords(b);
  startKeys(b);
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
    endKeys();
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
    if (isKey(b, key, PARAMS) && b[at] === OPEN_OBJECT) {
      const before = out.length;
      i = params(b, at, enclosing + 1, out);
      // A lone message's parts are found: what follows is JSON.parse's to read.
      if (enclosing === 0 && out.length > before) throw DONE;
    } else i = walk(b, at, enclosing + 1, false);
    i = ws(b, i);
    if (b[i] === CLOSE_OBJECT) return i + 1;
    if (b[i] !== COMMA) throw NOT_JSON;
    i = ws(b, i + 1);
  }
}

/**
 * The index after the params object (or `params._meta` object, `meta`) at `i`; the spans of its
 * members' values no rule reads go to `out`.
 */
function params(b: Buffer, i: number, enclosing: number, out: number[], meta = false): number {
  i = ws(b, i + 1);
  if (b[i] === CLOSE_OBJECT) return i + 1;
  for (;;) {
    const key = i;
    const at = afterPlainKey(b, i);
    const c = b[at];
    if (c !== OPEN_OBJECT && c !== OPEN_ARRAY) i = walk(b, at, enclosing + 1, false);
    else if (!meta && c === OPEN_OBJECT && isKey(b, key, META)) i = params(b, at, enclosing + 1, out, true);
    else if (unread(b, key, meta ? META_KEYS : PARAMS_KEYS) || (!meta && isKey(b, key, ARGUMENTS))) {
      counted = 0;
      dropped = 0;
      i = walk(b, at, enclosing + 1, true);
      out.push(at, i, counted, counted - dropped);
    } else i = walk(b, at, enclosing + 1, false);
    i = ws(b, i);
    if (b[i] === CLOSE_OBJECT) return i + 1;
    if (b[i] !== COMMA) throw NOT_JSON;
    i = ws(b, i + 1);
  }
}

/**
 * Whether the key whose opening quote is at `i`, just read by afterPlainKey, is spelled plainly and
 * is none of `read` (quoted names).
 */
function unread(b: Buffer, i: number, read: readonly Buffer[]): boolean {
  if (keyEscaped) return false;
  for (const name of read) if (name.length === keyEnd - i && isKey(b, i, name)) return false;
  return true;
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
 * Whether walk found a key that holds a backslash once decoded (spelled `\\` or `\u005c`): the
 * caller then checks the keys JSON.parse read as the whole parse does (key-check.ts), so both
 * paths refuse alike.
 */
export let backslashKey = false;

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
 * Reads the key at `i` into `keys` (object-keys.ts: throws KEEP on a key `__proto__`), counted; a
 * repeat drops the values the members of the same key held (`dropped`). Unless the object's keys
 * are not checked. Returns its value's index.
 */
function key(b: Buffer, i: number, keys: Keys): number {
  const at = afterPlainKey(b, i);
  if (!keys.checked) return at;
  // The member before this key ends here: what it holds, net of what was dropped inside it.
  if (keys.count > 0) setHeld(keys.current, counted - keys.countedAt - (dropped - keys.droppedAt));
  const earlier = addKey(b, keys, i + 1, keyEnd - 1, keyEscaped);
  // addKey decoded an escaped key (object-keys.ts decode): whether it holds a backslash.
  if (keyEscaped && decodedBackslash) backslashKey = true;
  if (earlier !== -1) {
    repeated = true;
    dropped += heldBy(earlier);
  }
  keys.countedAt = counted;
  keys.droppedAt = dropped;
  counted++;
  return at;
}

/** The key afterPlainKey read last: the index after its closing quote, and whether it holds an escape. */
let keyEnd = 0;
let keyEscaped = false;

/**
 * afterKey (strict-skip.ts), but a key the pre-scan read whole and found valid (plainSpans: no
 * escape) is not read again.
 */
function afterPlainKey(b: Buffer, i: number): number {
  if (b[i] !== QUOTE) throw NOT_JSON;
  const plain = plainSpans;
  while (nextPlain < plain.length && (plain[nextPlain] as number) < i) nextPlain += 2;
  if (nextPlain < plain.length && plain[nextPlain] === i) {
    keyEnd = plain[nextPlain + 1] as number;
    keyEscaped = false;
  } else {
    keyEnd = string(b, i);
    keyEscaped = escaped;
  }
  const colon = ws(b, keyEnd);
  if (b[colon] !== COLON) throw NOT_JSON;
  return ws(b, colon + 1);
}

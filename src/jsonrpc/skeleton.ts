/**
 * A parse that never builds a long string nobody reads. On this kind of machine a fresh string of
 * more than ~128 KiB costs a page fault per 4 KiB of it (V8 maps such objects afresh each time): a
 * 4 MiB argument built by JSON.parse costs ~1,000 faults, ~11 ms, where reading its bytes costs
 * well under one. So JSON.parse is given a skeleton of the body: the body with each long value
 * string (scan.ts reports them) replaced by a placeholder, `"\u0000k"` for the k-th one. No string
 * JSON.parse builds from a skeleton holds U+0000 but the placeholders (it could only be written
 * `\u0000`: a body without a `\u` escape has none, and one with is parsed whole unless the
 * skeleton holds no `\u0000` but the placeholders': unicodeSkeleton), so a placeholder is never a
 * string the client sent.
 *
 * Validity is unchanged: a string's extent does not depend on where it stands (outside a string a
 * quote always opens one, and inside one only the escapes decide where it closes, which is how the
 * pre-scan found it), so the body is JSON exactly when the skeleton is and each long string's bytes
 * are a valid string's (by strict-skip.ts's rules for a string, which the pre-scan applies from a
 * string's first backslash on; the bytes before it are checked here: validStrings). Everything the
 * walk over the parsed value checks is in the skeleton: every key (long strings that are keys are
 * kept), every value counted alike (a placeholder is a string), repeated keys, `__proto__`.
 *
 * A large body's parts that no rule reads (unread-spans.ts: the object and array values of the
 * members of `params` and `params._meta` no rule reads, and `params.arguments` when nothing reads
 * the arguments, as only the audit of arguments and `Mcp-Param-*` checks do: read-depth.ts) can be
 * left out whole, once unread-spans.ts has read them as JSON.parse and the walk over the parsed
 * value would; their values are counted, so a key repeated elsewhere is still found.
 *
 * Then each placeholder of a long string is given its string back, except inside a message's
 * `params.arguments` when nothing reads the arguments: there it stays, as a part's placeholder
 * always does, and the forwarded bytes, the client's own or spliced from them, still hold what it
 * stands for, as the client spelled it (splice.ts re-spells `\u` escapes only in strings that were
 * built). A string given back is the body's own bytes as a one-byte string when they are ASCII
 * without an escape (Node copies one of 1 MiB or more into memory of its own, outside V8's heap),
 * else decoded by JSON.parse.
 */
import { isAscii } from 'node:buffer';
import { backslashKey, repeated, unreadSpans } from './unread-spans.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** `"\u0000` and `"`: a placeholder without its number. */
const OPEN = Buffer.from('"\\u0000');

/** What a parse leaves out of JSON.parse. */
export interface Cut {
  /** Start and end offsets of each part left out, in order (the k-th gets placeholder k). */
  readonly spans: readonly number[];
  /**
   * The long strings, left out alone or with the arguments they are in (validated here): all the
   * pre-scan's, in its order (its `checked` is indexed alike).
   */
  readonly strings: readonly number[];
  /**
   * For each part, the values the parsed value would hold there (net of members a repeated key
   * replaced); undefined: one each (strings only).
   */
  readonly counts: readonly number[] | undefined;
  /** How many values the skeleton holds fewer than the body, as the pre-scan counts them. */
  readonly missing: number;
  /** Whether a key repeats inside arguments left out (the bytes forwarded then need a splice). */
  readonly repeats: boolean;
  /** Whether a key inside a part left out holds a backslash once decoded. */
  readonly backslash: boolean;
}

/**
 * What to leave out of JSON.parse: the long strings (`long`, from the pre-scan), and, when
 * `withUnread` (the caller looks for them: walksUnread), the parts no rule reads (unread-spans.ts:
 * the members of each message's `params` and `params._meta` nothing reads, its arguments among
 * them) with the long strings in them; nothing (undefined) when that would cover fewer than `from`
 * bytes.
 */
export function cutOf(
  body: Buffer,
  long: readonly number[],
  withUnread: boolean,
  from: number,
  plain?: ArrayLike<number>,
): Cut | undefined {
  const args = withUnread ? unreadSpans(body, long, plain) : undefined;
  if (args === undefined || args.length === 0) {
    if (long.length === 0 || spanBytes(long) < from) return undefined;
    return { spans: long, strings: long, counts: undefined, missing: 0, repeats: false, backslash: false };
  }
  const spans: number[] = [];
  const strings: number[] = [];
  const counts: number[] = [];
  let missing = 0;
  let a = 0;
  const flush = (before: number) => {
    while (a < args.length && (args[a] as number) < before) {
      spans.push(args[a] as number, args[a + 1] as number);
      missing += (args[a + 2] as number) - 1;
      counts.push(args[a + 3] as number);
      a += 4;
    }
  };
  for (let k = 0; k < long.length; k += 2) {
    const start = long[k] as number;
    flush(start);
    // A long string inside the part just passed goes with it (validated all the same).
    strings.push(start, long[k + 1] as number);
    if (a > 0 && start < (args[a - 3] as number)) continue;
    spans.push(start, long[k + 1] as number);
    counts.push(1);
  }
  flush(Infinity);
  if (spanBytes(spans) < from) return undefined;
  return { spans, strings, counts, missing, repeats: repeated, backslash: backslashKey };
}

/** Whether unread parts are looked for in a body of this size (they cost a walk over the bytes). */
export function walksUnread(body: Buffer, from: number): boolean {
  return body.length >= 8 * from;
}

/** How many bytes the spans (start and end offsets) cover together. */
function spanBytes(spans: readonly number[]): number {
  let total = 0;
  for (let k = 0; k < spans.length; k += 2) total += (spans[k + 1] as number) - (spans[k] as number);
  return total;
}

/**
 * How many values the parts left out in `value` (parsed from the skeleton) hold beyond their
 * placeholders: with it, the value counts what the whole body's parse would hold. Parts stand only
 * as members of a message's `params` or `params._meta` (unread-spans.ts); a placeholder there that
 * stands for a long string counts 1, as the string does.
 */
export function valuesLeftOut(value: unknown, cut: Cut): number {
  const counts = cut.counts;
  if (counts === undefined) return 0;
  let n = 0;
  for (const m of Array.isArray(value) ? (value as unknown[]) : [value]) {
    if (!isRecord(m)) continue;
    const params = m.params;
    if (!isRecord(params)) continue;
    n += placeheld(params, counts);
    if (isRecord(params._meta)) n += placeheld(params._meta, counts);
  }
  return n;
}

/**
 * The values beyond their placeholders that the members of `o` stand for. `o` is read after
 * restoreStrings gave the long strings back, and a client's long string may itself begin with
 * U+0000: only a string spelled exactly as a placeholder (`"\u0000k"`, k a part's index) is one.
 */
function placeheld(o: Record<string, unknown>, counts: readonly number[]): number {
  let n = 0;
  for (const key in o) {
    const k = placeholderIndex(o[key], counts.length);
    if (k !== -1) n += (counts[k] as number) - 1;
  }
  return n;
}

/** k when `v` is exactly placeholder k (`"\u0000k"`, k below `parts`), else -1. */
function placeholderIndex(v: unknown, parts: number): number {
  if (!isPlaceholder(v)) return -1;
  const digits = v.slice(1);
  const k = Number(digits);
  return Number.isInteger(k) && k < parts && String(k) === digits ? k : -1;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The body with each part at `spans` (start and end offsets, in order) replaced by its
 * placeholder.
 */
export function skeletonOf(body: Buffer, long: readonly number[]): Buffer {
  let size = body.length;
  for (let k = 0; k < long.length; k += 2) {
    size -= (long[k + 1] as number) - (long[k] as number);
    size += OPEN.length + String(k >> 1).length + 1;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  let from = 0;
  for (let k = 0; k < long.length; k += 2) {
    const start = long[k] as number;
    at += body.copy(out, at, from, start);
    at += OPEN.copy(out, at);
    at += out.write(String(k >> 1), at, 'latin1');
    out[at++] = QUOTE;
    from = long[k + 1] as number;
  }
  body.copy(out, at, from);
  return out;
}

/** `\u0000`: the only spelling of U+0000, which a placeholder starts with. */
const NUL_ESCAPE = Buffer.from('\\u0000');

/**
 * The skeleton of a body holding `\u` escapes, when it is worth parsing and sound; else undefined
 * (the body is then parsed whole). Worth it: it leaves out at least half the body (the search
 * below costs up to ~1 ns a byte on text dense with `\u` escapes, and the skeleton is a copy: both
 * are paid back only when much is left unbuilt). Sound: each `\u0000` in it is a placeholder's (a
 * client string that JSON.parse builds could otherwise start with U+0000 and be taken for one;
 * the text `\\u0000` is counted too, which only parses more bodies whole).
 */
export function unicodeSkeleton(body: Buffer, cut: Cut): Buffer | undefined {
  if (2 * spanBytes(cut.spans) < body.length) return undefined;
  const skeleton = skeletonOf(body, cut.spans);
  let found = 0;
  for (let at = skeleton.indexOf(NUL_ESCAPE); at !== -1; at = skeleton.indexOf(NUL_ESCAPE, at + 1)) {
    if (++found > cut.spans.length >> 1) return undefined;
  }
  return skeleton;
}

/**
 * Whether each string at `long` is one JSON.parse accepts (standard escapes, no raw control bytes).
 * `checked` is the pre-scan's (scan.ts): for each string, where the part it read as JSON.parse
 * would begins (before it, no backslash), or -1 when it met a flaw there (a bad escape or a raw
 * control byte), so only the plain bytes before that part are read here.
 */
export function validStrings(body: Buffer, long: readonly number[], checked: readonly number[]): boolean {
  for (let k = 0; k < long.length; k += 2) {
    const from = checked[k >> 1] as number;
    if (from < 0 || !noControlBytes(body, (long[k] as number) + 1, from)) return false;
  }
  return true;
}

/** Whether no byte in [from, to) is below 0x20, read four at a time. */
function noControlBytes(b: Buffer, from: number, to: number): boolean {
  let j = from;
  while (j < to && ((b.byteOffset + j) & 3) !== 0) if ((b[j++] as number) < 0x20) return false;
  if (j >= to) return true;
  const words = new Uint32Array(b.buffer, b.byteOffset + j, (to - j) >> 2);
  for (let w = 0; w < words.length; w++) {
    const x = words[w] as number;
    // A byte below 0x20 sets its high bit here; no other byte does (bytes from 0x80 are cleared by
    // ~x, and a borrow only ever starts at a byte below 0x20).
    if (((x - 0x20202020) & ~x & 0x80808080) !== 0) return false;
  }
  for (j += words.length * 4; j < to; j++) if ((b[j] as number) < 0x20) return false;
  return true;
}

/** Whether a parsed string is a placeholder. */
function isPlaceholder(v: unknown): v is string {
  return typeof v === 'string' && v.charCodeAt(0) === 0;
}

/** A container to visit, and what it is to a reader: a message, its params, or anything else. */
const OTHER = 0;
const MESSAGE = 1;
const PARAMS = 2;

/**
 * Puts back each placeholder's string in the value parsed from the skeleton (the value itself
 * when it is one), except inside messages' `params.arguments` when `argumentsRead` is false; a
 * placeholder of a part no rule reads stays.
 */
export function restoreStrings(
  value: unknown,
  body: Buffer,
  long: readonly number[],
  argumentsRead: boolean,
): unknown {
  if (isPlaceholder(value)) return stringAt(body, long, value) ?? value;
  if (typeof value !== 'object' || value === null) return value;
  const stack: (object | number)[] = [value, Array.isArray(value) ? OTHER : MESSAGE];
  const batch = Array.isArray(value);
  while (stack.length > 0) {
    const role = stack.pop() as number;
    const v = stack.pop() as object;
    if (Array.isArray(v)) {
      const items = v as unknown[];
      const itemRole = batch && v === value ? MESSAGE : OTHER;
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (isPlaceholder(item)) items[i] = stringAt(body, long, item) ?? item;
        else if (typeof item === 'object' && item !== null) stack.push(item, itemRole);
      }
      continue;
    }
    const o = v as Record<string, unknown>;
    for (const key in o) {
      const item = o[key];
      if (role === PARAMS && key === 'arguments' && !argumentsRead) continue;
      if (isPlaceholder(item)) o[key] = stringAt(body, long, item) ?? item;
      else if (typeof item === 'object' && item !== null)
        stack.push(item, role === MESSAGE && key === 'params' && !Array.isArray(item) ? PARAMS : OTHER);
    }
  }
  return value;
}

/**
 * The string a placeholder stands for; undefined when it stands for an object or array no rule
 * reads (unread-spans.ts), which stays a placeholder.
 */
function stringAt(body: Buffer, long: readonly number[], placeholder: string): string | undefined {
  const k = 2 * Number(placeholder.slice(1));
  const start = long[k] as number;
  const end = long[k + 1] as number;
  if (body[start] !== QUOTE) return undefined;
  const inner = body.subarray(start + 1, end - 1);
  if (inner.indexOf(BACKSLASH) === -1 && isAscii(inner)) return inner.toString('latin1');
  return JSON.parse(body.toString('utf8', start, end)) as string;
}

/**
 * The bytes to forward for a body whose own bytes do not mean one thing to every parser, built from
 * those bytes instead of re-serialising the parsed value: a key repeated in an object (JSON.parse
 * keeps the last member, other parsers the first) and a `\u` escape (parsers differ on lone
 * surrogates, and a key like `"\u0069d"` would hide from a byte matcher). One pass over the bytes:
 *
 * - a member that a later member with the same key (compared after unescaping) replaced is left
 *   out, from its key to the next member's key (its comma and the whitespace after it go with it;
 *   the last member of an object is never replaced, so the commas left stay well placed);
 * - each string, key or value, that holds a `\u` escape, and each key spelled with any escape, is
 *   written as JSON.stringify writes it (which spells only control characters and lone surrogates
 *   as `\u` escapes, and escapes only `"`, `\` and those), except a long
 *   value string in arguments nothing reads, and the strings and keys of such arguments left out
 *   of JSON.parse whole (skeleton.ts): no rule reads them, and what they mean to the upstream is
 *   what the client wrote (re-spelling changes no character: a lone surrogate is spelled `\uXXXX`
 *   either way);
 * - everything else stays as the client wrote it: whitespace, number spellings, short escapes.
 *
 * The upstream then reads exactly the value judged, with no repeated key anywhere, at the cost of a
 * pass over the bytes and a copy, where JSON.stringify of a 4 MiB body cost several parses of it.
 *
 * Precondition: JSON.parse accepted exactly these bytes. The pass counts the values it keeps as the
 * pre-scan counts them (scan.ts); when that is not the number the parsed value holds, or the bytes
 * surprise it otherwise, it returns undefined and the caller re-serialises the value (slower, never
 * wrong).
 */

import { assemble } from './splice-assemble.ts';
import { Offsets } from './offsets.ts';
import { StringEnds } from './string-end.ts';

const QUOTE = 0x22;

/** A member of an object, from its key to the next member's key. */
interface Member {
  readonly start: number;
  end: number;
  /** Values counted before its key, and before the next member's key (net of what was left out). */
  readonly valuesBefore: number;
  valuesAfter: number;
}

interface Frame {
  readonly array: boolean;
  expectKey: boolean;
  /** The container in the parsed value, once looked up (undefined: not yet, null: none there). */
  container: unknown[] | Record<string, unknown> | null | undefined;
  /** Arrays: the current element's index. */
  index: number;
  /** Objects: the current member's key, as bytes between its quotes, and unescaped once needed. */
  keyStart: number;
  keyEnd: number;
  keyEscaped: boolean;
  key: string | undefined;
  /** The member being read (objects, when keys repeat). */
  current: Member | undefined;
  /** The first key and its member, then (from the second key on) every key's latest member. */
  firstKey: string | undefined;
  members: Map<string, Member> | undefined;
}

/**
 * @param body the body JSON.parse accepted
 * @param value what JSON.parse built from it (to tell which parts left out nothing reads)
 * @param lossy start and end offsets of the numbers the pre-scan kept (jumped over, not read)
 * @param repeatedKeys whether some key repeats (else only `\u` escapes are re-spelled)
 * @param values how many values the parsed value holds (tree.ts)
 * @param asciiText the body's text when it is all ASCII (its offsets are the bytes')
 * @param unbuilt start and end offsets of the parts left out of JSON.parse (skeleton.ts), the k-th
 *   standing as placeholder k in `value`: a string whose place in `value` still holds its own
 *   placeholder is one nothing reads (skeleton.ts gives back every other), so it is kept as the
 *   client wrote it, `\u` escapes and all, and jumped over (its extent is the pre-scan's, which
 *   validated it)
 * @param unbuiltValues for each part left out, the values the parsed value would hold there, when
 *   no key repeats inside any of them: an object or array left out (a part of params nothing
 *   reads, unread-spans.ts) whose place still holds its placeholder is then kept as the client
 *   wrote it too, and jumped over; undefined: such parts are walked (their members may need
 *   leaving out)
 */
export function spliceBody(
  body: Buffer,
  value: unknown,
  lossy: ArrayLike<number>,
  repeatedKeys: boolean,
  values: number,
  asciiText?: string,
  unbuilt: readonly number[] = NONE,
  unbuiltValues?: readonly number[],
): Buffer | undefined {
  const frames: Frame[] = [];
  /** Strings to re-spell: start and end (after the closing quote), in order. */
  const respell = RESPELL.reset();
  /** Members to leave out: start and end, in the order found. */
  const drops: number[] = [];
  const n = body.length;
  let counted = 0;
  let nextLossy = 0;
  let nextUnbuilt = 0;
  const strings = new StringEnds(body);
  /**
   * The part left out that starts at `i`, a value, when its place in the parsed value still holds
   * its own placeholder (nothing reads it): its index; else -1.
   */
  const unbuiltAt = (i: number): number => {
    while (nextUnbuilt < unbuilt.length && (unbuilt[nextUnbuilt] as number) < i) nextUnbuilt += 2;
    if (nextUnbuilt >= unbuilt.length || unbuilt[nextUnbuilt] !== i || frames.length === 0) return -1;
    const k = nextUnbuilt >> 1;
    return isPlaceholderOf(slotValue(body, frames, frames.length - 1, value), k) ? k : -1;
  };
  let i = 0;
  let first = -1;
  let last = -1;
  while (i < n) {
    const c = body[i] as number;
    if (c === QUOTE) {
      if (first === -1) first = i;
      const start = i;
      const top = frames.length > 0 ? (frames[frames.length - 1] as Frame) : undefined;
      const isKey = top !== undefined && top.expectKey;
      const k = isKey ? -1 : unbuiltAt(i);
      if (k !== -1) {
        i = unbuilt[2 * k + 1] as number;
        last = i;
        counted++;
        continue;
      }
      const end = strings.close(i);
      if (end === -1) return undefined;
      const unicode = strings.unicode;
      const escaped = strings.escaped;
      i = end + 1;
      last = i;
      // A key spelled with any escape is written plainly too: V8's JSON.parse can misread such a
      // key as one an earlier body planted (key-check.ts), in the upstream's process as in ours.
      if (unicode || (isKey && escaped)) respell.push(start, i);
      if (isKey) {
        top.expectKey = false;
        top.keyStart = start;
        top.keyEnd = i;
        top.keyEscaped = escaped;
        top.key = undefined;
        if (repeatedKeys) {
          const current = top.current;
          if (current !== undefined) {
            current.end = start;
            current.valuesAfter = counted;
          }
          // A plain key of an ASCII body is a slice of its text (no call into the Buffer).
          if (asciiText !== undefined && !escaped) top.key = asciiText.slice(start + 1, i - 1);
          const key = keyOf(body, top);
          const earlier = latest(top, key);
          if (earlier !== undefined) {
            if (earlier.end === -1) return undefined;
            drops.push(earlier.start, earlier.end);
            counted -= earlier.valuesAfter - earlier.valuesBefore;
          }
          const member: Member = { start, end: -1, valuesBefore: counted, valuesAfter: -1 };
          remember(top, key, member);
          top.current = member;
        }
      }
      counted++;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (first === -1) first = i;
      const k = unbuiltValues === undefined ? -1 : unbuiltAt(i);
      if (k !== -1) {
        i = unbuilt[2 * k + 1] as number;
        last = i;
        counted += (unbuiltValues as readonly number[])[k] as number;
        continue;
      }
      const array = c === 0x5b;
      frames.push({
        array,
        expectKey: !array,
        container: undefined,
        index: 0,
        keyStart: 0,
        keyEnd: 0,
        keyEscaped: false,
        key: undefined,
        current: undefined,
        firstKey: undefined,
        members: undefined,
      });
      counted++;
      i++;
      continue;
    }
    if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (frames.pop() === undefined) return undefined;
      i++;
      last = i;
      continue;
    }
    if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1];
      if (top === undefined) return undefined;
      if (top.array) top.index++;
      else top.expectKey = true;
      i++;
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      if (first === -1) first = i;
      while (nextLossy < lossy.length && (lossy[nextLossy] as number) < i) nextLossy += 2;
      if (lossy[nextLossy] === i) {
        i = lossy[nextLossy + 1] as number;
        nextLossy += 2;
      } else {
        i++;
        while (i < n && isNumberByte(body[i] as number)) i++;
      }
      counted++;
      last = i;
      continue;
    }
    if (c === 0x74 /* t */ || c === 0x66 /* f */ || c === 0x6e /* n */) {
      if (first === -1) first = i;
      i++;
      while (i < n && (body[i] as number) >= 0x61 && (body[i] as number) <= 0x7a) i++;
      counted++;
      last = i;
      continue;
    }
    i++;
  }
  if (frames.length !== 0 || counted !== values || first === -1) return undefined;
  // Nothing to change (every `\u` escape in strings nothing reads): the client's bytes, no copy.
  if (respell.length === 0 && drops.length === 0) return body.subarray(first, last);
  return assemble(body, first, last, respell, drops);
}

const NONE: readonly number[] = [];
/** The strings to re-spell, kept from body to body (offsets.ts). */
const RESPELL = new Offsets();

/** Whether `v` is placeholder `k` of skeleton.ts: `"\u0000k"`. */
function isPlaceholderOf(v: unknown, k: number): boolean {
  return typeof v === 'string' && v.charCodeAt(0) === 0 && v.slice(1) === String(k);
}

/** The latest member of `key` in the object of `frame`, if any. */
function latest(frame: Frame, key: string): Member | undefined {
  if (frame.members !== undefined) return frame.members.get(key);
  return frame.firstKey === key ? frame.current : undefined;
}

/**
 * Records `member` as the latest of `key`. An object's first key is kept in its frame (its member
 * is the frame's current one until the second key); a Map is made only at the second key.
 */
function remember(frame: Frame, key: string, member: Member): void {
  if (frame.members !== undefined) frame.members.set(key, member);
  else if (frame.firstKey === undefined) frame.firstKey = key;
  else {
    frame.members = new Map([[frame.firstKey, frame.current as Member]]);
    frame.members.set(key, member);
  }
}

/** The current key of an object's frame, unescaped (once). */
function keyOf(body: Buffer, frame: Frame): string {
  frame.key ??= frame.keyEscaped
    ? (JSON.parse(body.toString('utf8', frame.keyStart, frame.keyEnd)) as string)
    : body.toString('utf8', frame.keyStart + 1, frame.keyEnd - 1);
  return frame.key;
}

/** What the parsed value holds at the current place of frame `d` (the container of the next value). */
function slotValue(body: Buffer, frames: Frame[], d: number, value: unknown): unknown {
  const parent = containerOf(body, frames, d, value);
  if (parent === null) return undefined;
  const frame = frames[d] as Frame;
  if (frame.array) return (parent as unknown[])[frame.index];
  const key = keyOf(body, frame);
  return Object.hasOwn(parent, key) ? (parent as Record<string, unknown>)[key] : undefined;
}

/** The container of frame `d` in the parsed value, looked up from its parent's place once. */
function containerOf(
  body: Buffer,
  frames: Frame[],
  d: number,
  value: unknown,
): unknown[] | Record<string, unknown> | null {
  const frame = frames[d] as Frame;
  if (frame.container !== undefined) return frame.container;
  const here = d === 0 ? value : slotValue(body, frames, d - 1, value);
  frame.container =
    typeof here === 'object' && here !== null && Array.isArray(here) === frame.array
      ? (here as unknown[] | Record<string, unknown>)
      : null;
  return frame.container;
}

function isNumberByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

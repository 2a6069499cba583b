/**
 * Puts the numbers a double cannot spell back (lossless.ts) into the value JSON.parse built from
 * the same bytes, without a second parse: one pass over the bytes follows the nesting (which member
 * of which object, which element of which array) and, at each kept number's offset, replaces the
 * double in the value by the number kept as its lexeme.
 *
 * The pass costs what the pre-scan costs over the same bytes, or less: strings are skipped with
 * indexOf, a kept number is jumped over (its end is known), and when no key repeats it stops at the
 * last kept number, decoding a key and looking a container up only on the way to a kept number.
 *
 * A repeated key: JSON.parse keeps only the last member of each key, and the bytes alone do not
 * say, at an earlier member, that a later one will replace it. In that mode (`repeatedKeys`) the
 * pass reads every key to the end of the body, logs what it replaces, and when a key comes again in
 * the same object, undoes what it placed under the earlier member (which may have gone into the
 * later member's containers, or found no matching slot there).
 *
 * Precondition: JSON.parse accepted exactly these bytes. A slot that does not hold what the bytes
 * say (outside a replaced member) makes the pass give up and return undefined, leaving the value
 * partly placed; the caller then builds it again another way.
 */
import { rawNumber } from './lossless.ts';
import { StringEnds } from './string-end.ts';

const QUOTE = 0x22;

/** One open container on the way: its slot in its parent is resolved only when needed. */
interface Frame {
  array: boolean;
  /** The container in the value, once looked up (undefined: not yet). */
  container: unknown[] | Record<string, unknown> | undefined;
  /** Arrays: the index of the current element. */
  index: number;
  /** Objects: the current member's key, as bytes between its quotes. */
  keyStart: number;
  keyEnd: number;
  keyEscaped: boolean;
  /** Objects: the next string is a key. */
  expectKey: boolean;
  /** Objects, when keys may repeat: each key's latest member, as its range in the undo log. */
  members: Map<string, { start: number; end: number }> | undefined;
  /** Objects, when keys may repeat: the current member's key. */
  memberKey: string | undefined;
}

/** A kept number put in a slot (or not, the slot not matching), undone if its member is not the last. */
interface Placed {
  readonly container: unknown[] | Record<string, unknown> | undefined;
  readonly slot: number | string;
  readonly prev: unknown;
  /** 0: placed; 1: skipped, the slot not matching (fine only in a member a later one replaces); 2: undone. */
  state: number;
}

/**
 * Replaces the numbers at `lossy` (start and end byte offsets, in order) in `value`, which
 * JSON.parse built from `body`. Returns the value (a new one when the whole body is such a number),
 * or undefined when a slot did not match the bytes.
 *
 * @param asciiText the body's text when it is all ASCII (its offsets are the bytes'): a lexeme is
 *   then a slice of it (V8 shares the characters), not a copy
 */
export function placeNumbers(
  body: Buffer,
  value: unknown,
  lossy: ArrayLike<number>,
  asciiText: string | undefined,
  repeatedKeys = false,
): unknown {
  const frames: Frame[] = [];
  const log: Placed[] = [];
  /** Puts back what the members placed from `start` to `end` in the log had replaced. */
  const undo = (start: number, end: number): void => {
    for (let k = end - 1; k >= start; k--) {
      const entry = log[k] as Placed;
      if (entry.state === 0) (entry.container as Record<string | number, unknown>)[entry.slot] = entry.prev;
      entry.state = 2;
    }
  };
  let depth = 0;
  let next = 0;
  let target = lossy[0] as number;
  const n = body.length;
  let i = 0;
  const strings = new StringEnds(body);

  /** The container of frame `d`, looked up from its parent's current slot on first use. */
  const resolve = (d: number): unknown[] | Record<string, unknown> | undefined => {
    const frame = frames[d] as Frame;
    if (frame.container !== undefined) return frame.container;
    const child = d === 0 ? value : slotValue(d - 1);
    if (typeof child !== 'object' || child === null || Array.isArray(child) !== frame.array) return undefined;
    frame.container = child as unknown[] | Record<string, unknown>;
    return frame.container;
  };
  const keyOf = (frame: Frame): string => {
    const raw = body.toString('utf8', frame.keyStart, frame.keyEnd);
    return frame.keyEscaped ? (JSON.parse(`"${raw}"`) as string) : raw;
  };
  const slotValue = (d: number): unknown => {
    const parent = resolve(d);
    if (parent === undefined) return undefined;
    const frame = frames[d] as Frame;
    if (frame.array) return (parent as unknown[])[frame.index];
    const key = keyOf(frame);
    return Object.hasOwn(parent, key) ? (parent as Record<string, unknown>)[key] : undefined;
  };

  while (i < n) {
    const c = body[i] as number;
    if (c === QUOTE) {
      const start = i + 1;
      const end = strings.close(i);
      if (end === -1) return undefined;
      const escaped = strings.escaped;
      i = end + 1;
      const top = depth > 0 ? (frames[depth - 1] as Frame) : undefined;
      if (top !== undefined && top.expectKey) {
        top.keyStart = start;
        top.keyEnd = end;
        top.keyEscaped = escaped;
        top.expectKey = false;
        if (repeatedKeys) {
          // A member whose key comes again is not in the value: undo what was placed under it.
          const key = keyOf(top);
          const members = (top.members ??= new Map());
          const earlier = members.get(key);
          if (earlier !== undefined) undo(earlier.start, earlier.end);
          members.set(key, { start: log.length, end: log.length });
          top.memberKey = key;
        }
      }
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const array = c === 0x5b;
      let frame = frames[depth];
      if (frame === undefined) {
        frame = {
          array,
          container: undefined,
          index: 0,
          keyStart: 0,
          keyEnd: 0,
          keyEscaped: false,
          expectKey: !array,
          members: undefined,
          memberKey: undefined,
        };
        frames.push(frame);
      } else {
        frame.array = array;
        frame.container = undefined;
        frame.index = 0;
        frame.expectKey = !array;
        frame.members = undefined;
        frame.memberKey = undefined;
      }
      depth++;
      i++;
      continue;
    }
    if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (repeatedKeys) endMember(frames[depth - 1] as Frame, log.length);
      depth--;
      i++;
      continue;
    }
    if (c === 0x2c /* , */) {
      const top = frames[depth - 1] as Frame;
      if (top.array) top.index++;
      else {
        top.expectKey = true;
        if (repeatedKeys) endMember(top, log.length);
      }
      i++;
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      if (i !== target) {
        i++;
        while (i < n && isNumberByte(body[i] as number)) i++;
        continue;
      }
      const end = lossy[next * 2 + 1] as number;
      const kept = rawNumber(
        asciiText !== undefined ? asciiText.slice(i, end) : body.toString('latin1', i, end),
      );
      if (depth === 0) return kept;
      const frame = frames[depth - 1] as Frame;
      const parent = resolve(depth - 1);
      const slot = frame.array ? frame.index : (frame.memberKey ?? keyOf(frame));
      // An own "__proto__" member is assigned as data (the own property shadows the accessor).
      const holds =
        parent !== undefined &&
        (frame.array || Object.hasOwn(parent, slot)) &&
        typeof (parent as Record<string | number, unknown>)[slot] === 'number';
      if (holds) {
        const o = parent as Record<string | number, unknown>;
        if (repeatedKeys) log.push({ container: parent, slot, prev: o[slot], state: 0 });
        o[slot] = kept;
      } else if (repeatedKeys) log.push({ container: undefined, slot, prev: undefined, state: 1 });
      else return undefined;
      next++;
      i = end;
      if (next * 2 < lossy.length) target = lossy[next * 2] as number;
      else if (!repeatedKeys) return value;
      else target = -1;
      continue;
    }
    i++;
  }
  // Every kept number was placed, except under members a later one with the same key replaced.
  if (!repeatedKeys || next * 2 < lossy.length) return undefined;
  for (const entry of log) if (entry.state === 1) return undefined;
  return value;
}

/** Where the current member of an object ends in the undo log (arrays have none). */
function endMember(frame: Frame, at: number): void {
  if (frame.memberKey === undefined || frame.members === undefined) return;
  const range = frame.members.get(frame.memberKey);
  if (range !== undefined) range.end = at;
}

function isNumberByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

/**
 * Puts the numbers a double cannot spell back (lossless.ts) into the value JSON.parse built from
 * the same bytes, without a second parse: one pass over the bytes, from the start to the last such
 * number, follows the nesting (which member of which object, which element of which array) and, at
 * each kept number's offset, replaces the double in the value by the number kept as its lexeme.
 *
 * The pass costs what the pre-scan costs over the same bytes, or less: strings are skipped with
 * indexOf, a kept number is jumped over (its end is known), and a key is decoded only on the way to
 * a kept number. Containers are looked up in the value only then too.
 *
 * Preconditions (parse.ts checks them first): JSON.parse accepted exactly these bytes, and no object
 * repeats a key, so every member in the bytes is the member in the value. A slot that does not hold
 * what the bytes say (which those preconditions rule out) makes the pass give up and return false,
 * leaving the value partly placed; the caller then builds it again another way.
 */
import { rawNumber } from './lossless.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Bytes of a string read one by one before the rest is searched with indexOf (as scan.ts). */
const SHORT_STRING = 64;

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
  lossy: readonly number[],
  asciiText: string | undefined,
): unknown {
  const frames: Frame[] = [];
  let depth = 0;
  let next = 0;
  let target = lossy[0] as number;
  const n = body.length;
  let i = 0;
  // The next backslash at or after some offset, searched lazily and only forward (-1: none left).
  let backslash = -2;

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
      // Where the string ends, and whether it holds an escape (as scan.ts skips it).
      const start = i + 1;
      let j = start;
      let escaped = false;
      const stop = j + SHORT_STRING < n ? j + SHORT_STRING : n;
      while (j < stop) {
        const d = body[j] as number;
        if (d === QUOTE || d === BACKSLASH) break;
        j++;
      }
      let end = -1;
      if (j === stop) {
        const quote = body.indexOf(QUOTE, j);
        if (quote === -1) return undefined;
        if (backslash !== -1 && backslash < j) backslash = body.indexOf(BACKSLASH, j);
        if (backslash === -1 || backslash > quote) end = quote;
        else j = backslash;
      } else if (body[j] === QUOTE) end = j;
      if (end === -1) {
        escaped = true;
        while (j < n) {
          const d = body[j] as number;
          if (d === QUOTE) break;
          j += d === BACKSLASH ? 2 : 1;
        }
        end = j;
      }
      i = end + 1;
      const top = depth > 0 ? (frames[depth - 1] as Frame) : undefined;
      if (top !== undefined && top.expectKey) {
        top.keyStart = start;
        top.keyEnd = end;
        top.keyEscaped = escaped;
        top.expectKey = false;
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
        };
        frames.push(frame);
      } else {
        frame.array = array;
        frame.container = undefined;
        frame.index = 0;
        frame.expectKey = !array;
      }
      depth++;
      i++;
      continue;
    }
    if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
      i++;
      continue;
    }
    if (c === 0x2c /* , */) {
      const top = frames[depth - 1] as Frame;
      if (top.array) top.index++;
      else top.expectKey = true;
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
      if (parent === undefined) return undefined;
      if (frame.array) {
        const items = parent as unknown[];
        if (typeof items[frame.index] !== 'number') return undefined;
        items[frame.index] = kept;
      } else {
        const key = keyOf(frame);
        const o = parent as Record<string, unknown>;
        // An own "__proto__" member is assigned as data (the own property shadows the accessor).
        if (!Object.hasOwn(o, key) || typeof o[key] !== 'number') return undefined;
        o[key] = kept;
      }
      next++;
      if (next * 2 >= lossy.length) return value;
      target = lossy[next * 2] as number;
      i = end;
      continue;
    }
    i++;
  }
  return undefined;
}

function isNumberByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

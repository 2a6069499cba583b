/**
 * One walk over a parsed body: how many values it holds, counted as scan.ts counts them in the
 * bytes (scalars, arrays, objects and object keys), whether any object has an own `__proto__` key,
 * and whether any object has two keys that differ only by case. Iterative, so any depth; it visits
 * each value once and allocates only its stack (and a Set for an object with two or more keys of
 * which one has an upper-case or non-ASCII character).
 *
 * Keys that differ only by case: JSON.parse keeps `"name"` and `"NAME"` apart, and so does the
 * judge, but Go's encoding/json matches a key to a field case-insensitively (with Unicode simple
 * folding: `ſ` is `s`, the Kelvin sign is `k`), the last key winning. An upstream decoding
 * `{"name":"echo","NAME":"rm_rf"}` that way runs rm_rf where the gateway judged echo. Such a body
 * has no one meaning, so it is refused.
 */
export interface TreeShape {
  readonly values: number;
  /**
   * An object with an own `__proto__` key, or an own `constructor` object holding a `prototype`, was
   * found (the walk stops there).
   */
  readonly protoKey: boolean;
  /** An object with two keys that differ only by case was found (the walk stops there). */
  readonly caseTwins: boolean;
  /** A key holding a backslash was found (looked for only when asked: findBackslash). */
  readonly backslashKey: boolean;
}

/**
 * @param value what JSON.parse returned (before any number is kept as its lexeme)
 * @param findProto look for own `__proto__` keys and `constructor` objects holding a `prototype`
 *   (only a body that spells `__proto__` or `prototype`, or holds a `\u` escape, can have one)
 * @param findBackslash look for keys holding a backslash (only a body with a key spelled with an
 *   escape can have one, and only such a key can be one V8 misread: key-check.ts)
 */
export function walkTree(value: unknown, findProto: boolean, findBackslash = false): TreeShape {
  try {
    return walk(value, findProto, findBackslash);
  } finally {
    if (FOLDS.size !== 0) FOLDS.clear();
  }
}

/** Keys at least this long have mayFold's answer remembered for the walk (FOLDS). */
const LONG_KEY = 16;
/** At most this many keys are remembered per walk (the bound of its memory). */
const REMEMBERED = 256;
/**
 * mayFold's answer for long keys met in this walk. Objects with the same keys (a list of records)
 * hold the very same key strings, which JSON.parse interned, so a Map finds them by the hash they
 * carry, without reading them: ~150 ns a key less for 100-character keys. Cleared after each walk.
 */
const FOLDS = new Map<string, boolean>();

function mayFoldRemembered(key: string): boolean {
  const known = FOLDS.get(key);
  if (known !== undefined) return known;
  const folds = mayFold(key);
  if (FOLDS.size < REMEMBERED) FOLDS.set(key, folds);
  return folds;
}

function walk(value: unknown, findProto: boolean, findBackslash: boolean): TreeShape {
  let values = 1;
  let backslashKey = false;
  if (typeof value !== 'object' || value === null)
    return { values, protoKey: false, caseTwins: false, backslashKey };
  const stack: object[] = [value];
  while (stack.length > 0) {
    const v = stack.pop() as object;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        values++;
        if (typeof item === 'object' && item !== null) stack.push(item);
      }
      continue;
    }
    if (findProto && (Object.hasOwn(v, '__proto__') || holdsPrototype(v)))
      return { values, protoKey: true, caseTwins: false, backslashKey };
    const o = v as Record<string, unknown>;
    let keys = 0;
    let foldable = false;
    for (const key in o) {
      const item = o[key];
      values += 2;
      keys++;
      if (!foldable && (key.length < LONG_KEY ? mayFold(key) : mayFoldRemembered(key))) foldable = true;
      if (findBackslash && !backslashKey && key.includes('\\')) backslashKey = true;
      if (typeof item === 'object' && item !== null) stack.push(item);
    }
    if (foldable && keys > 1 && hasCaseTwins(o))
      return { values, protoKey: false, caseTwins: true, backslashKey };
  }
  return { values, protoKey: false, caseTwins: false, backslashKey };
}

/**
 * Whether an object has an own `constructor` that is an object with an own `prototype`: a naive deep
 * merge follows an object's inherited `constructor` to `Object` and merges such a value into
 * `Object.prototype` (secure-json-parse, fastify's parser, refuses the same shape).
 */
function holdsPrototype(o: object): boolean {
  if (!Object.hasOwn(o, 'constructor')) return false;
  const c: unknown = (o as { constructor: unknown }).constructor;
  return typeof c === 'object' && c !== null && Object.hasOwn(c, 'prototype');
}

/**
 * Whether a key can equal another one under case folding: it has an upper-case ASCII letter or a
 * non-ASCII character. Keys of lower-case ASCII only fold to themselves, so two of them never
 * collide (the common case: an MCP body's keys are camelCase at most).
 */
export function mayFold(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || c >= 0x80) return true;
  }
  return false;
}

/**
 * A key as case folding compares it. Upper-casing first folds the characters that lower-casing
 * alone leaves apart (`ſ` upper-cases to S); it also equates a few that simple folding does not
 * (`ß` and `ss`), which only refuses more. It would keep one pair of simple folding apart: `ẞ`
 * (U+1E9E) comes out as `ß`, `ß` as `ss`, where Go's encoding/json folds both to `ß`
 * (unicode.SimpleFold): so an `ß` left is spelled `ss` too.
 */
export function foldKey(key: string): string {
  const folded = key.toUpperCase().toLowerCase();
  return folded.includes('ß') ? folded.replaceAll('ß', 'ss') : folded;
}

/** Two keys equal under case folding (foldKey). */
function hasCaseTwins(o: Record<string, unknown>): boolean {
  const folded = new Set<string>();
  let keys = 0;
  for (const key in o) {
    keys++;
    folded.add(foldKey(key));
  }
  return folded.size < keys;
}

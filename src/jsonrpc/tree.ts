/**
 * One walk over a parsed body: how many values it holds, counted as scan.ts counts them in the
 * bytes (scalars, arrays, objects and object keys), and whether any object has an own `__proto__`
 * key. Iterative, so any depth; it visits each value once and allocates only its stack.
 */
import { isRawNumber } from './lossless.ts';

export interface TreeShape {
  readonly values: number;
  /** An object with an own `__proto__` key was found (the walk stops there). */
  readonly protoKey: boolean;
}

/**
 * @param findProto look for own `__proto__` keys (only a body that spells `__proto__` or holds a
 *   `\u` escape can have one)
 * @param rawNumbers the value may hold numbers kept as their lexemes (lossless.ts), each one value
 */
export function walkTree(value: unknown, findProto: boolean, rawNumbers: boolean): TreeShape {
  let values = 1;
  if (typeof value !== 'object' || value === null) return { values, protoKey: false };
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
    if (rawNumbers && isRawNumber(v)) continue;
    if (findProto && Object.hasOwn(v, '__proto__')) return { values, protoKey: true };
    const o = v as Record<string, unknown>;
    for (const key in o) {
      const item = o[key];
      values += 2;
      if (typeof item === 'object' && item !== null) stack.push(item);
    }
  }
  return { values, protoKey: false };
}

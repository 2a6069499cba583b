/**
 * The pieces the byte paths (small-match.ts, event-match.ts) read an object's members with: keys
 * compared as bytes, and an object whose own keys must be plain (no escape) and not one of those a
 * caller refuses. Built on the strict grammar of jsonrpc/strict-skip.ts; like it, they throw on
 * bytes that are not JSON, and the callers hand such bodies to the parse.
 */
import { CLOSE_OBJECT, COLON, COMMA, escaped, QUOTE, string, value, ws } from '../jsonrpc/strict-skip.ts';

/** Whether b[from, to) is exactly the ASCII `text`. */
export function bytesAre(b: Uint8Array, from: number, to: number, text: string): boolean {
  if (to - from !== text.length) return false;
  for (let k = 0; k < text.length; k++) if (b[from + k] !== text.charCodeAt(k)) return false;
  return true;
}

/** After a key ending at `keyEnd`: the index of its value, or past the end (the walk then fails). */
export function valueStart(b: Uint8Array, keyEnd: number): number {
  const colon = ws(b, keyEnd);
  return b[colon] === COLON ? ws(b, colon + 1) : b.length;
}

/**
 * The index after the object at `open`, or -1 when one of its own keys holds an escape or is one
 * `refused` names (the unescaped key in b[from, to)). Its values are only skipped (validated).
 */
export function plainObjectEnd(
  b: Uint8Array,
  open: number,
  refused: (b: Uint8Array, from: number, to: number) => boolean,
): number {
  let i = ws(b, open + 1);
  if (b[i] === CLOSE_OBJECT) return i + 1;
  for (;;) {
    if (b[i] !== QUOTE) return -1;
    const keyEnd = string(b, i);
    if (escaped || refused(b, i + 1, keyEnd - 1)) return -1;
    i = ws(b, value(b, valueStart(b, keyEnd), 2));
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    return b[i] === CLOSE_OBJECT ? i + 1 : -1;
  }
}

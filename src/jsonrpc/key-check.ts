/**
 * Whether JSON.parse read every object key as the bytes spell it. V8's JSON.parse (Node 24 and 26;
 * not Node 22) can read a key spelled with an escape as a key it met before in the same place of
 * an object (after the same keys, in any earlier body): it compares the bytes with that earlier
 * key's characters, escapes and all, and the lengths once decoded. After `{"q":1,"n\\u0":1}`, the
 * key of `{"q":1,"n\u0061me":2}` comes out as `n\u0`, so a body
 * `{"q":1,"name":"echo","n\u0061me":"rm_rf"}` was judged as calling echo, and forwarded (the `\u`
 * escape spelled plainly) as `"name":"echo","name":"rm_rf"`: rm_rf to the upstream, which keeps
 * the last. Any escape will do (`"path\/"` is read as `path\` after `"path\\"`), not only `\"`.
 *
 * Such a misread key always holds a backslash (the earlier key matched the bytes up to the
 * escape's backslash), so only a body with a key spelled with an escape whose parsed value holds a
 * key with a backslash is checked here (scan.ts keyEscape, tree.ts backslashKey): the text
 * JSON.parse read is walked along the parsed value, each key decoded on its own (unescape.ts, not
 * JSON.parse), and each object must hold exactly the keys its bytes spell. A key repeated in an
 * object fails the check too (the members it replaced cannot be paired with the value), which only
 * refuses a body that also has a key holding a backslash.
 */
import {
  CLOSE_ARRAY,
  CLOSE_OBJECT,
  COLON,
  COMMA,
  OPEN_ARRAY,
  OPEN_OBJECT,
  escaped,
  NOT_JSON,
  scalar,
  string,
  ws,
} from './strict-skip.ts';
import { unescapeString } from './unescape.ts';

interface Frame {
  /** The parsed object or array these bytes stand for. */
  readonly node: Record<string, unknown> | unknown[];
  /** Objects: the keys read so far, decoded. */
  readonly keys: Set<string> | undefined;
  /** Arrays: the elements read so far. */
  elements: number;
}

/**
 * @param text the bytes JSON.parse accepted (the skeleton when long strings were left out: a
 *   placeholder is a string in both)
 * @param value what it returned (placeholders given back or not: keys are unchanged)
 */
export function keysAsSpelled(text: Buffer, value: unknown): boolean {
  try {
    return walk(text, value);
  } catch (err) {
    // Not JSON as strict-skip.ts reads it: never the case for bytes JSON.parse accepted.
    if (err === NOT_JSON) return false;
    throw err;
  }
}

function walk(text: Buffer, value: unknown): boolean {
  const frames: Frame[] = [];
  let node: unknown = value;
  let i = ws(text, 0);
  for (;;) {
    // text[i] starts a value, which the parse made `node`.
    let c = text[i] as number;
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      const object = c === OPEN_OBJECT;
      if (typeof node !== 'object' || node === null || Array.isArray(node) === object) return false;
      const frame: Frame = {
        node: node as Record<string, unknown> | unknown[],
        keys: object ? new Set() : undefined,
        elements: 0,
      };
      frames.push(frame);
      i = ws(text, i + 1);
      if (text[i] !== (object ? CLOSE_OBJECT : CLOSE_ARRAY)) {
        const next = member(text, i, frame);
        if (next === undefined) return false;
        [i, node] = next;
        continue;
      }
      if (!closes(frame)) return false;
      frames.pop();
      i++;
    } else i = scalar(text, i);
    // After a value: close what ends here, or go on to the next member or element.
    for (;;) {
      const frame = frames[frames.length - 1];
      if (frame === undefined) return true;
      i = ws(text, i);
      c = text[i] as number;
      if (c === COMMA) {
        const next = member(text, ws(text, i + 1), frame);
        if (next === undefined) return false;
        [i, node] = next;
        break;
      }
      if (!closes(frame)) return false;
      frames.pop();
      i++;
    }
  }
}

/**
 * The member or element of `frame` at `i`: where its value starts and what the parse made of it;
 * undefined when the parsed object lacks the key as spelled, or the key repeats.
 */
function member(text: Buffer, i: number, frame: Frame): [number, unknown] | undefined {
  const keys = frame.keys;
  if (keys === undefined) return [i, (frame.node as unknown[])[frame.elements++]];
  const end = string(text, i);
  const key = escaped ? unescapeString(text, i + 1, end - 1) : text.toString('utf8', i + 1, end - 1);
  const node = frame.node as Record<string, unknown>;
  if (keys.has(key) || !Object.hasOwn(node, key)) return undefined;
  keys.add(key);
  i = ws(text, end);
  if (text[i] !== COLON) return undefined;
  return [ws(text, i + 1), node[key]];
}

/** Whether the parsed container holds no more than its bytes spelled. */
function closes(frame: Frame): boolean {
  if (frame.keys === undefined) return (frame.node as unknown[]).length === frame.elements;
  return Object.keys(frame.node).length === frame.keys.size;
}

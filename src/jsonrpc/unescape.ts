/**
 * A JSON string's text from its bytes, for a string strict-skip.ts walked and found valid: the
 * stretches between escapes decoded as UTF-8 (the caller has checked the body is valid UTF-8), each
 * escape by hand. JSON.parse of the same bytes gives the same string (a `\u` escape is one UTF-16
 * code unit, so a surrogate pair spelled as two escapes joins as it does there, and a lone one
 * stays lone), at a third of its cost for a ~100-byte key: V8 parses a string with an escape on a
 * slow path.
 */

const BACKSLASH = 0x5c;

/** The character each short escape stands for, by the byte after the backslash. */
const SHORT: string[] = [];
SHORT[0x22] = '"';
SHORT[0x5c] = '\\';
SHORT[0x2f] = '/';
SHORT[0x62] = '\b';
SHORT[0x66] = '\f';
SHORT[0x6e] = '\n';
SHORT[0x72] = '\r';
SHORT[0x74] = '\t';

/** The text of the valid JSON string whose bytes between its quotes are [start, end). */
export function unescapeString(b: Buffer, start: number, end: number): string {
  let text = '';
  let from = start;
  for (let at = b.indexOf(BACKSLASH, from); at !== -1 && at < end; at = b.indexOf(BACKSLASH, from)) {
    if (at > from) text += b.toString('utf8', from, at);
    const e = b[at + 1] as number;
    if (e === 0x75) {
      text += String.fromCharCode(hex(b, at + 2));
      from = at + 6;
    } else {
      text += SHORT[e] as string;
      from = at + 2;
    }
  }
  return from < end ? text + b.toString('utf8', from, end) : text;
}

/** The code unit each short escape stands for, by the byte after the backslash. */
const SHORT_UNIT = new Int32Array(256).fill(-1);
for (let e = 0; e < 256; e++) if (SHORT[e] !== undefined) SHORT_UNIT[e] = (SHORT[e] as string).charCodeAt(0);

/**
 * Whether the valid JSON string whose opening quote is at `i` spells `text`: the index after its
 * closing quote if so, else -1. Compared unit by unit as it is read, escapes decoded on the way,
 * so nothing is built; a string with a byte of 0x80 or above is decoded whole and compared.
 */
export function spellsAt(b: Buffer, i: number, text: string): number {
  const n = text.length;
  let j = i + 1;
  for (let k = 0; ; k++) {
    const c = b[j] as number;
    if (c === 0x22) return k === n ? j + 1 : -1;
    let unit: number;
    if (c === BACKSLASH) {
      const e = b[j + 1] as number;
      if (e === 0x75) {
        unit = hex(b, j + 2);
        j += 6;
      } else {
        unit = SHORT_UNIT[e] as number;
        j += 2;
      }
    } else if (c >= 0x80) {
      return whole(b, i, text);
    } else {
      unit = c;
      j++;
    }
    if (k >= n || text.charCodeAt(k) !== unit) return -1;
  }
}

/** spellsAt for a string that holds a byte of 0x80 or above. */
function whole(b: Buffer, i: number, text: string): number {
  let end = i + 1;
  for (;;) {
    const c = b[end];
    if (c === 0x22) break;
    if (c === undefined) return -1;
    end += c === BACKSLASH ? 2 : 1;
  }
  return unescapeString(b, i + 1, end) === text ? end + 1 : -1;
}

/** The four hex digits at `i` as a number (valid: the caller's bytes are JSON). */
export function hex(b: Uint8Array, i: number): number {
  return (
    (digit(b[i] as number) << 12) |
    (digit(b[i + 1] as number) << 8) |
    (digit(b[i + 2] as number) << 4) |
    digit(b[i + 3] as number)
  );
}

function digit(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}

/**
 * Numbers exactly as the client wrote them. JSON.parse turns every number into a double, and
 * JSON.stringify of that double can spell something else: `12345678901234567890` becomes
 * `12345678901234567000`, `1e400` becomes `null`, `-0` becomes `0`, `1.0` becomes `1`. Parsers on
 * the other side differ in what a spelling means (Python reads `1.0` as a float and `1` as an int;
 * Go, Java and Python keep every digit of a big integer), so the gateway keeps such a number as its
 * lexeme: a `JSON.rawJSON` value, which JSON.stringify writes back byte for byte.
 *
 * Only numbers whose spelling a double does not reproduce are kept this way (the pre-scan finds
 * them); every other number stays a plain `number`. A kept number is an opaque frozen object to the
 * rest of the gateway (so a rule that wants a number, such as a request id, refuses it rather than
 * misreading it).
 *
 * How: JSON.parse with a reviver and `context.source` is 15-20 times slower than a plain parse (a
 * 4 MiB body took ~300 ms), so instead each such lexeme is turned into a string carrying a prefix
 * with 96 random bits drawn for this parse (no client can spell it), the text is parsed plainly,
 * and one walk over the result turns those strings into raw numbers.
 */
import { randomBytes } from 'node:crypto';

interface RawJsonApi {
  rawJSON(text: string): object;
  isRawJSON(value: unknown): boolean;
}

const api = JSON as unknown as RawJsonApi;
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Whether a parsed value is a number kept as its lexeme. */
export function isRawNumber(value: unknown): boolean {
  return typeof value === 'object' && value !== null && api.isRawJSON(value);
}

/** The lexeme of a kept number. */
export function rawNumberText(value: unknown): string {
  return (value as { rawJSON: string }).rawJSON;
}

/**
 * Parses a body (strict UTF-8), keeping the numbers at `lossy` (start and end byte offsets, in
 * order) as their lexemes. Throws what TextDecoder or JSON.parse throw.
 */
export function parseKeepingNumbers(body: Buffer, lossy: readonly number[]): unknown {
  const prefix = `\u0001${randomBytes(12).toString('hex')}:`;
  const open = Buffer.from(`"\\u0001${prefix.slice(1)}`);
  const marks = lossy.length / 2;
  // One buffer, copied into piece by piece (many small Buffer views would cost more than the parse).
  const out = Buffer.allocUnsafe(body.length + marks * (open.length + 1));
  let at = 0;
  let to = 0;
  for (let k = 0; k + 1 < lossy.length; k += 2) {
    const start = lossy[k] as number;
    const end = lossy[k + 1] as number;
    to += body.copy(out, to, at, start);
    to += open.copy(out, to);
    to += body.copy(out, to, start, end);
    out[to++] = 0x22;
    at = end;
  }
  body.copy(out, to, at);
  const value: unknown = JSON.parse(decoder.decode(out));
  return restore(value, prefix);
}

/** Turns the marked strings back into raw numbers (iterative: any depth). */
function restore(value: unknown, prefix: string): unknown {
  if (typeof value === 'string')
    return value.startsWith(prefix) ? api.rawJSON(value.slice(prefix.length)) : value;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (typeof item === 'string') {
          if (item.startsWith(prefix)) v[i] = api.rawJSON(item.slice(prefix.length));
        } else if (typeof item === 'object' && item !== null) stack.push(item);
      }
      continue;
    }
    const o = v as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      const item = o[key];
      if (typeof item === 'string') {
        // An own "__proto__" data property is assigned as data (it shadows the accessor).
        if (item.startsWith(prefix)) o[key] = api.rawJSON(item.slice(prefix.length));
      } else if (typeof item === 'object' && item !== null) stack.push(item);
    }
  }
  return value;
}

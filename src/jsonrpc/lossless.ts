/**
 * Numbers exactly as the client wrote them. JSON.parse turns every number into a double, and
 * JSON.stringify of that double can spell something else: `12345678901234567890` becomes
 * `12345678901234567000`, `1e400` becomes `null`, `-0` becomes `0`, `1.0` becomes `1`. Parsers on
 * the other side differ in what a spelling means (Python reads `1.0` as a float and `1` as an int;
 * Go, Java and Python keep every digit of a big integer), so the gateway keeps such a number as its
 * lexeme.
 *
 * Only numbers whose spelling a double does not reproduce are kept this way (the pre-scan finds
 * them); every other number stays a plain `number`. A kept number is an opaque frozen object without
 * a usable prototype to the rest of the gateway (so a rule that wants a number, such as a request
 * id, refuses it rather than misreading it); JSON.stringify writes it back byte for byte, through a
 * `JSON.rawJSON` value made only then (rawJSON parses its text again, as long as the lexeme, so the
 * common body, forwarded as the client's own bytes, never pays for it).
 *
 * Where the kept numbers go: place-numbers.ts puts them into the value JSON.parse built, in one pass
 * over the bytes up to the last of them. It cannot when a key repeats (the value holds only the last
 * of its members, which the bytes alone do not tell apart); then `parseKeepingNumbers` turns each
 * lexeme into a string carrying a prefix with 96 random bits drawn for this parse (no client can
 * spell it), parses the text plainly, and one walk over the result turns those strings back.
 */
import { randomBytes } from 'node:crypto';
import { parsedAsSpelled } from './key-check.ts';

interface RawJsonApi {
  rawJSON(text: string): object;
}

const api = JSON as unknown as RawJsonApi;

/** A number kept as its lexeme (the constructor is not exported: only a parse makes one). */
class RawNumber {
  readonly #text: string;
  constructor(text: string) {
    this.#text = text;
    Object.freeze(this);
  }

  /** JSON.stringify writes the lexeme as it is. */
  toJSON(): object {
    return api.rawJSON(this.#text);
  }

  static is(value: unknown): value is RawNumber {
    return typeof value === 'object' && value !== null && #text in value;
  }

  static text(value: RawNumber): string {
    return value.#text;
  }
}
// Nothing inherited but toJSON: a rule reading a member of a kept number finds nothing.
Object.setPrototypeOf(RawNumber.prototype, null);
Reflect.deleteProperty(RawNumber.prototype, 'constructor');
Object.freeze(RawNumber.prototype);

/** A kept number for a valid JSON number lexeme (the caller has parsed it). */
export function rawNumber(lexeme: string): object {
  return new RawNumber(lexeme);
}

/** Whether a parsed value is a number kept as its lexeme. */
export function isRawNumber(value: unknown): boolean {
  return RawNumber.is(value);
}

/** The lexeme of a kept number. */
export function rawNumberText(value: unknown): string {
  if (!RawNumber.is(value)) throw new TypeError('not a kept number');
  return RawNumber.text(value);
}

/**
 * Parses a body that JSON.parse has already accepted (valid UTF-8, valid JSON), keeping the numbers
 * at `lossy` (start and end byte offsets, in order) as their lexemes. Any body, repeated keys too.
 * Undefined when this parse misread a key (key-check.ts): the caller's check of the first parse
 * does not cover it, since that parse may have built what makes this one misread (an object holding
 * `n\u0` after one spelling `n\u0061me` with the same first keys, later in the same body).
 */
export function parseKeepingNumbers(body: Buffer, lossy: ArrayLike<number>): unknown {
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
  // Valid UTF-8: the body was, and only ASCII was inserted between its tokens.
  const value: unknown = JSON.parse(out.toString('utf8'));
  if (!parsedAsSpelled(out, value)) return undefined;
  return restore(value, prefix);
}

/** Turns the marked strings back into kept numbers (iterative: any depth). */
function restore(value: unknown, prefix: string): unknown {
  if (typeof value === 'string')
    return value.startsWith(prefix) ? new RawNumber(value.slice(prefix.length)) : value;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        if (typeof item === 'string') {
          if (item.startsWith(prefix)) v[i] = new RawNumber(item.slice(prefix.length));
        } else if (typeof item === 'object' && item !== null) stack.push(item);
      }
      continue;
    }
    const o = v as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      const item = o[key];
      if (typeof item === 'string') {
        // An own "__proto__" data property is assigned as data (it shadows the accessor).
        if (item.startsWith(prefix)) o[key] = new RawNumber(item.slice(prefix.length));
      } else if (typeof item === 'object' && item !== null) stack.push(item);
    }
  }
  return value;
}

/**
 * Numbers exactly as the client wrote them. JSON.parse turns every number into a double, and
 * JSON.stringify of that double can spell something else: `12345678901234567890` becomes
 * `12345678901234567000`, `1e400` becomes `null`, `-0` becomes `0`, `1.0` becomes `1`. Parsers on
 * the other side differ in what a spelling means (Python reads `1.0` as a float and `1` as an int;
 * Go, Java and Python keep every digit of a big integer), so the gateway keeps such a number as its
 * lexeme: a `JSON.rawJSON` value, which JSON.stringify writes back byte for byte.
 *
 * Only numbers whose spelling a double does not reproduce are kept this way; every other number
 * stays a plain `number`. A kept number is an opaque frozen object to the rest of the gateway (so a
 * rule that wants a number, such as a request id, refuses it rather than misreading it).
 */

interface RawJsonApi {
  rawJSON(text: string): object;
  isRawJSON(value: unknown): boolean;
}

interface ReviverContext {
  readonly source?: string;
}

const api = JSON as unknown as RawJsonApi;

/** Whether a parsed value is a number kept as its lexeme. */
export function isRawNumber(value: unknown): boolean {
  return typeof value === 'object' && value !== null && api.isRawJSON(value);
}

/** The lexeme of a kept number. */
export function rawNumberText(value: unknown): string {
  return (value as { rawJSON: string }).rawJSON;
}

function keepLexemes(this: unknown, _key: string, value: unknown, context?: ReviverContext): unknown {
  if (typeof value !== 'number') return value;
  const source = context?.source;
  if (source === undefined || String(value) === source) return value;
  return api.rawJSON(source);
}

/** JSON.parse that keeps every number a double cannot spell back the same way as its lexeme. */
export function parseKeepingNumbers(text: string): unknown {
  return JSON.parse(text, keepLexemes as (key: string, value: unknown) => unknown);
}

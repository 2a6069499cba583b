/** A JSON object as a rule reads one: not null, not an array (a raw number is one, lossless.ts). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

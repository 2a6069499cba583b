/**
 * The structural limits of a request body, in a module of their own so that the parse (parse.ts)
 * and the byte validators it uses (strict-skip.ts) need not import each other.
 */
import type { ScanLimits } from './scan.ts';

/** Deepest nesting of a body (an MCP message with a JSON Schema argument is far shallower). */
export const MAX_DEPTH = 64;
/**
 * Most values in one body (scalars, containers and object keys): bounds what building one body can
 * cost (bench/parse-fuzz.ts reports the slowest shapes); an MCP request is typically a few dozen.
 */
export const MAX_VALUES = 100_000;

export const BODY_LIMITS: ScanLimits = Object.freeze({ maxDepth: MAX_DEPTH, maxValues: MAX_VALUES });

/**
 * ioredis, loaded only when the Redis store is configured, with `String.prototype` put back in V8's
 * fast mode after it loads.
 *
 * ioredis 6 defines `class VerbatimString extends String` (resp/verbatim-string.js). Subclassing a
 * builtin turns its prototype into a dictionary (V8's "setup mode" for a prototype about to get
 * properties), and `String.prototype` stays one: the inline caches that make a prototype fast again
 * run for object receivers, and every string method call has a primitive receiver. Optimized code
 * then loads each `s.charCodeAt`, `s.slice`, `s.indexOf` through the generic LoadIC builtin instead
 * of a constant, in mcpgate's code and in Node's HTTP code alike. With ioredis imported at start-up
 * (as it was, for every configuration), that cost a gateway with the memory store 0.1-0.3x the
 * floor's CPU per request (bench/README.md, "String.prototype in dictionary mode").
 *
 * So ioredis is imported only by the Redis store, and after it is, one object whose prototype is
 * `String.prototype` takes a property store and load: those inline-cache misses make the prototype
 * chain fast again (test/unit/ratelimit/ioredis.test.ts checks it with V8's own %HasFastProperties).
 */
import type { Redis } from 'ioredis';

export type RedisClass = typeof Redis;

export async function loadIoredis(): Promise<RedisClass> {
  const { Redis } = await import('ioredis');
  refastenStringPrototype();
  return Redis;
}

/** Makes `String.prototype` a fast-mode object again (a no-op when it is one). */
export function refastenStringPrototype(): void {
  const probe = Object.create(String.prototype) as { probe?: number };
  probe.probe = 1;
  if (probe.probe !== 1) throw new Error('unreachable');
}

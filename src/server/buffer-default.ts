/**
 * The default `limits.max_buffered_bytes`: a quarter of V8's heap limit (which follows
 * `--max-old-space-size`; about 4 GiB on a 64-bit machine with enough memory, so 1 GiB).
 *
 * Why a quarter: held bytes live outside the JS heap, but what the gateway does with them does not.
 * A held body is decoded once into a heap string (at most 2 bytes per byte) while it is parsed or
 * filtered, and a parsed request stays on the heap until its response ends (the value count is
 * capped per body, so its tree is bounded too). With at most a quarter of the heap's size held,
 * the held bytes and their decoded text together stay under about half the heap, leaving the rest
 * for parsed values, streams and the gateway itself.
 */
import { getHeapStatistics } from 'node:v8';

const MIB = 1024 * 1024;

export function defaultBufferedBytes(heapLimit: number = getHeapStatistics().heap_size_limit): number {
  return Math.max(16 * MIB, Math.floor(heapLimit / 4 / MIB) * MIB);
}

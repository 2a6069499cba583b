/**
 * Waits, synchronously, until an asynchronous write to a regular file has landed: for the exit path,
 * which must write newer lines after it, when no callback can run any more.
 *
 * The write is on libuv's threadpool. At exit it still happens (libuv drains the threadpool's queue
 * before the process ends), but when the threadpool is busy (WebCrypto verifications, DNS lookups)
 * it may not have started yet: lines written synchronously now went before it. The only thing the
 * main thread can see of it is the file: the write has landed when the file ends with its bytes.
 * The file is read through /proc/self/fd (the audit fd is opened write-only, and its path may have
 * been renamed by logrotate); where that does not exist, this returns at once (the lines then keep
 * the order the threadpool gives them, as before).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Bytes of the write's end compared with the file's end (an audit line or more: unique). */
const TAIL_BYTES = 4096;
const POLL_MS = 1;

/** Returns true once the file ends with `bytes`; false after `waitMs`, or when it cannot tell. */
export function waitForWriteInFlight(fd: number, bytes: Buffer, waitMs: number): boolean {
  let reader: number;
  try {
    reader = openSync(`/proc/self/fd/${fd}`, 'r');
  } catch {
    return false;
  }
  try {
    const tail = bytes.subarray(Math.max(0, bytes.length - TAIL_BYTES));
    const seen = Buffer.allocUnsafe(tail.length);
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    const deadline = performance.now() + waitMs;
    for (;;) {
      const size = fstatSync(reader).size;
      if (size >= tail.length && readSync(reader, seen, 0, tail.length, size - tail.length) === tail.length) {
        if (seen.equals(tail)) return true;
      }
      if (performance.now() >= deadline) return false;
      Atomics.wait(sleeper, 0, 0, POLL_MS);
    }
  } catch {
    return false;
  } finally {
    closeSync(reader);
  }
}

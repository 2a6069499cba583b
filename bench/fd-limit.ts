/**
 * The open-file limit for the many-streams scenario. Each stream is a socket in this process (the
 * client), two in the gateway (client side and upstream side) and one in the origin, so 5,000
 * streams need over 10,000 descriptors in the gateway. Node raises its soft limit to the hard limit
 * at start, so the hard limit is what counts: when it is too low, this process's limits are raised
 * with prlimit(1) (needs CAP_SYS_RESOURCE, e.g. root in a container), and every process the bench
 * starts afterwards inherits them.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Descriptors each process may need beyond its sockets (files, pipes, the event loop). */
const MARGIN = 1024;

interface Limits {
  readonly soft: number;
  readonly hard: number;
}

function openFiles(): Limits {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const value = (v: string | undefined) => (v === undefined || v === 'unlimited' ? Infinity : Number(v));
  return { soft: value(line?.[1]), hard: value(line?.[2]) };
}

/**
 * Makes sure processes started from now on may open `sockets` sockets each, plus a margin.
 * Returns what it found and did, for the log and the README notes.
 */
export async function ensureFileLimit(sockets: number): Promise<string> {
  const need = sockets + MARGIN;
  const before = openFiles();
  if (before.soft >= need) return `open-file limit ${before.soft} (needs ${need})`;
  const hard = Math.max(need, before.hard === Infinity ? need : before.hard);
  try {
    await run('prlimit', [`--pid=${process.pid}`, `--nofile=${hard}:${hard}`]);
  } catch (err) {
    throw new Error(
      `the streams need ${need} open files per process, the limit is ${before.soft} (hard ${before.hard}) ` +
        `and prlimit could not raise it (${err instanceof Error ? err.message.split('\n')[0] : String(err)}): ` +
        `raise it (ulimit -Hn ${need} as root) or open fewer streams`,
      { cause: err },
    );
  }
  const after = openFiles();
  if (after.soft < need) throw new Error(`prlimit left the open-file limit at ${after.soft}, below ${need}`);
  return `open-file limit raised from ${before.soft} to ${after.soft} with prlimit (needs ${need})`;
}

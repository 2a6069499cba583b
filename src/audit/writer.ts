/**
 * The audit stream: one JSON line per record, written through pino's in-process destination
 * (SonicBoom) to stdout, stderr or a file. No transports, no worker threads: the
 * product ships as one executable.
 *
 * Lines are encoded into a buffer outside the JavaScript heap as they come (line-buffer.ts) and
 * handed to the destination as one Buffer (SonicBoom's `buffer` content mode) at most BATCH_MS after
 * the first of them, or at the end of the event-loop turn once BATCH_BYTES wait. Each hand-over is
 * a write on libuv's threadpool and a wake-up of the main thread when it completes: handed over once
 * per turn, that was about 0.14 writes per request under load, and the threadpool thread alone was
 * 3% of the gateway's CPU; once per BATCH_MS it is a hundred writes a second at most (bench/README.md,
 * "After the fifth wave"). In its string mode SonicBoom appended each line to its pending string and
 * measured it again (flattening it), and under load the backlog waiting for the disk lived in the
 * young generation: copied at each scavenge it survived, then promoted. `maxWrite` is raised so one
 * write takes the whole backlog (at 16 KiB a write per event-loop round trip could fall behind).
 * A line waiting for its batch is still never lost: flush(), flushSync(), reopen(), close() and the
 * process 'exit' hook hand it over first.
 *
 * To a regular file the writes stay asynchronous. Writing each batch on the main thread (write(2)
 * into the page cache of a regular file) measured no cheaper per request than these batches, and a
 * regular file's write(2) cannot be made non-blocking: a stuck disk would hold the event loop. To
 * anything else (a pipe, a terminal, /dev/null) each batch is written synchronously, as pino writes
 * stdout by default: there the exit path could not wait for a write in flight (see flushSync). A
 * reader that stops reading then holds the gateway once the pipe is full, as it would any program
 * writing to stdout, instead of the backlog growing without bound.
 *
 * A line is `JSON.stringify(record)` (write), or written in place by a LineSource (append: the
 * request's audit line, line.ts, the same bytes without the record object or a string of the line),
 * handed to the destination rather than through a pino logger: a logger adds `level` (pino cannot
 * drop it without producing invalid JSON when `timestamp` is off) and serialises key by key, which
 * measured about 1.5x slower. The record owns its `time` field.
 *
 * Nothing is lost at shutdown: `close()` waits until every buffered line has reached the fd;
 * `flush()` waits without closing. A process 'exit' hook writes what is still buffered
 * synchronously if the process exits without close() (an uncaught crash); `flushSync()` does the
 * same on demand, after the batch whose asynchronous write is still in flight (in-flight.ts), so a
 * line never lands before an older one. The file is opened synchronously at creation, so there is
 * an fd to write to from the first line on. With a file output, `reopen()` (SIGHUP after logrotate)
 * continues in a fresh file at the same path: lines written before the call may still land in the
 * old file, lines written after it go to the new one.
 */
import { fstatSync, writeSync } from 'node:fs';
import { pino } from 'pino';
import { LineBuffer } from './line-buffer.ts';
import type { LineSource } from './line-buffer.ts';
import { waitForWriteInFlight } from './in-flight.ts';

/** SonicBoom, with the public `destroyed` and `fd` fields its type definitions leave out. */
type Destination = ReturnType<typeof pino.destination> & {
  destroyed: boolean;
  sync: boolean;
  readonly fd: number;
  /** SonicBoom internals: a write is under way, and the bytes it was given (kept after a failure). */
  readonly _writing: boolean;
  _writingBuf: Buffer;
  /** SonicBoom internals: the backlog after the write under way, in groups, and its byte count. */
  _bufs: Buffer[][];
  _lens: number[];
  _len: number;
  /** SonicBoom internals: a reopen waits for the write under way; the file is being opened. */
  readonly _reopening: boolean;
  readonly _opening: boolean;
};

export interface AuditWriterOptions {
  /** `stdout`, `stderr`, or a file path (appended to, created with `fileMode`). */
  readonly output: string;
  /** Write failures (disk full, unopenable file). Repeats are reported once until a write succeeds. */
  readonly onError?: (err: Error) => void;
  /** accepting() turned false (true) or back to true (false): for the operational log. */
  readonly onRefusing?: (refusing: boolean) => void;
  /** Permissions of a created audit file. */
  readonly fileMode?: number;
  /** close() gives up waiting after this long (a wedged disk must not hang shutdown). */
  readonly closeTimeoutMs?: number;
  /** accepting() turns false from this many bytes waiting (REFUSE_AT_BYTES)... */
  readonly refuseAtBytes?: number;
  /** ...and true again below this many (RESUME_AT_BYTES). */
  readonly resumeAtBytes?: number;
}

export interface AuditWriter {
  /** The file path, or undefined for stdout/stderr. */
  readonly file: string | undefined;
  /** Appends one line (JSON of `record`). After close() it is dropped and reported once. */
  write(record: object): void;
  /** Appends the line `source` writes (its bytes, newline included), as write() does. */
  append(source: LineSource): void;
  /**
   * Whether a new request's line can be kept: false while REFUSE_AT_BYTES or more wait for a
   * destination that does not take them (until fewer than RESUME_AT_BYTES wait), and for good once
   * stdout or stderr lost its reader. The gateway refuses requests meanwhile (fail closed).
   */
  accepting(): boolean;
  /**
   * Whether stdout or stderr lost its reader (EPIPE): no line can be written again, and only a
   * restart gives the gateway an output (/healthz says so, for the liveness probe).
   */
  lost(): boolean;
  /** Resolves once the destination is open (it is from creation on; kept for callers). */
  ready(): Promise<void>;
  /** Resolves when every line written so far has reached the fd (or the destination failed). */
  flush(): Promise<void>;
  /**
   * Writes what is buffered synchronously, after the batch being written asynchronously if there is
   * one (waiting for it up to `waitMs`, closeTimeoutMs by default); best effort, never throws (for a
   * process 'exit' hook).
   */
  flushSync(waitMs?: number): void;
  /** Reopens the file at the same path (logrotate); a no-op for stdout/stderr, a pipe or a device. */
  reopen(): void;
  /** Flushes, then closes (stdout/stderr stay open). Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_FILE_MODE = 0o640;
/** Most bytes one write(2) takes from the backlog. */
export const MAX_WRITE_BYTES = 1024 * 1024;

const DESTINATION = { sync: true, contentMode: 'buffer', maxWrite: MAX_WRITE_BYTES } as const;
/**
 * Most bytes handed to the destination and not yet written. Past it (a full disk, a stuck one) newer
 * lines are dropped and counted: held, they grew outside the heap, where no heap limit stops them,
 * until the OOM killer did (and took every line still waiting with it).
 */
export const MAX_BACKLOG_BYTES = 64 * 1024 * 1024;
/**
 * From this many bytes waiting, the gateway refuses new requests: a request whose line could be
 * dropped must not run (nothing it did may go unrecorded). The room left below MAX_BACKLOG_BYTES is
 * for the lines of requests already running, and of the refusals.
 */
export const REFUSE_AT_BYTES = 48 * 1024 * 1024;
/**
 * Requests are served again once fewer bytes than this wait; not as soon as fewer than
 * REFUSE_AT_BYTES do, or a disk that barely keeps up would switch the gateway (and the log lines
 * saying so) on and off with every write.
 */
export const RESUME_AT_BYTES = 32 * 1024 * 1024;
const NOTHING = Buffer.alloc(0);
/** Lines wait at most this long (ms) before they are written... */
export const BATCH_MS = 10;
/** ...or until this many bytes wait (written at the end of the event-loop turn). */
export const BATCH_BYTES = 64 * 1024;

/** One process 'exit' listener for every open writer: hands over the pending lines, writes them. */
const exitHooks = new Set<() => void>();
process.once('exit', () => {
  for (const hook of exitHooks) hook();
});
export const DEFAULT_CLOSE_TIMEOUT_MS = 5000;

/**
 * Creates the writer. For a file output the file is opened synchronously, so a wrong path or
 * permission fails here, at start-up, with the fs error (ENOENT, EACCES...).
 */
export function createAuditWriter(options: AuditWriterOptions): AuditWriter {
  const { output } = options;
  if (typeof output !== 'string' || output === '')
    throw new TypeError('audit output must be a non-empty string');
  const onError = options.onError ?? (() => {});
  const onRefusing = options.onRefusing ?? (() => {});
  const closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
  const refuseAt = options.refuseAtBytes ?? REFUSE_AT_BYTES;
  const resumeAt = options.resumeAtBytes ?? RESUME_AT_BYTES;
  const file = output === 'stdout' || output === 'stderr' ? undefined : output;
  const mode = options.fileMode ?? DEFAULT_FILE_MODE;
  // Built with `sync: true` so the file is opened here, synchronously (a wrong path or permission
  // throws the fs error now), and its fd is set before the first line can wait for it: opened
  // asynchronously, lines written before the open completed were lost if the process exited first
  // (flushSync had no fd to write to). The writes then go asynchronous. `sync: true` also keeps pino
  // from registering its own exit hook: the one below is the only exit path.
  const dest = (
    file === undefined
      ? pino.destination({ dest: output === 'stdout' ? 1 : 2, ...DESTINATION })
      : pino.destination({ dest: file, append: true, mkdir: false, mode, ...DESTINATION })
  ) as Destination;
  // A regular file is written asynchronously (a stuck disk must not hold the event loop). Anything
  // else (a pipe, a terminal, /dev/null) is written synchronously, batch by batch, as pino writes
  // stdout by default and Node writes process.stdout to a pipe: an asynchronous write to a pipe
  // could still be queued on the threadpool, or waiting for the reader half-written, when the exit
  // path writes newer lines, and they landed before it or in the middle of it. The file case is
  // handled by the exit path (waitForWriteInFlight).
  const regular = fstatSync(dest.fd).isFile();
  dest.sync = !regular;
  /** What pino's EPIPE listener turns into no-ops (restored for a named pipe: see the 'error' listener). */
  const methods = { write: dest.write, end: dest.end, flushSync: dest.flushSync, destroy: dest.destroy };

  let idle = true;
  let closed = false;
  let closing: Promise<void> | undefined;
  let reopening = false;
  /** The reader of stdout/stderr went away (EPIPE): pino has turned the destination into a no-op. */
  let broken = false;
  let lastErrorCode: string | undefined;
  let waiters: (() => void)[] = [];
  /** Lines dropped since the backlog was last written whole: it was full (MAX_BACKLOG_BYTES). */
  let dropped = 0;
  /** REFUSE_AT_BYTES were waiting, and RESUME_AT_BYTES not yet reached again: see accepting(). */
  let refusing = false;
  /** Lines not yet written nor handed to the destination. */
  const pending = new LineBuffer();
  /** A timer (BATCH_MS) or the end of the turn (BATCH_BYTES) will hand the pending lines over. */
  let scheduled = false;
  let turnScheduled = false;

  /** Hands the pending lines to the destination, as one Buffer. */
  function handOver(): void {
    scheduled = false;
    turnScheduled = false;
    const text = pending.take();
    if (text === undefined) return;
    if (dest.destroyed || broken) {
      idle = true;
      settle();
      return;
    }
    if (dest._len + text.length > MAX_BACKLOG_BYTES) {
      // Said once (the first line dropped); the count once the backlog has caught up (reportDropped).
      if (dropped === 0) onError(new Error('audit lines dropped: the audit destination is not taking them'));
      dropped += countLines(text);
      // SonicBoom tries a failed write again only when it is given another: an empty one, so the
      // lines resume once the destination takes them again.
      if (!dest._writing) {
        idle = false;
        (dest as unknown as { write(data: Buffer): boolean }).write(NOTHING);
      }
      return;
    }
    idle = false;
    // In `buffer` content mode SonicBoom's write takes a Buffer (its types only say string).
    (dest as unknown as { write(data: Buffer): boolean }).write(text);
  }
  const handOverTurn = () => {
    if (turnScheduled) handOver();
  };
  const onExit = () => flushSync();
  exitHooks.add(onExit);

  const report = (err: Error, code: string) => {
    if (code === lastErrorCode) return;
    lastErrorCode = code;
    onError(err);
  };
  const settle = () => {
    const list = waiters;
    waiters = [];
    for (const resolve of list) resolve();
  };
  dest.on('ready', () => {
    reopening = false;
  });
  dest.on('write', () => {
    lastErrorCode = undefined;
  });
  dest.on('drain', () => {
    idle = true;
    settle();
    reportDropped();
  });
  dest.on('error', (err: NodeJS.ErrnoException) => {
    // On EPIPE pino's own listener turns write/end/flushSync into no-ops: end() would never finish.
    // A file path that is a named pipe whose reader went away (a log shipper restarting) takes lines
    // again as soon as a reader opens it: there EPIPE is a failed write like any other, the lines
    // wait and go to the next reader (with pino's no-ops every later line was dropped, silently,
    // SIGHUP or not).
    if (err.code === 'EPIPE') {
      if (file !== undefined) Object.assign(dest, methods);
      else if (!broken) {
        broken = true;
        onRefusing(true);
      }
    }
    // A reopen whose open failed (the directory gone or read-only) never says 'ready': close()
    // waited for it until its timeout, and the process exited in the middle of the shutdown.
    if (!dest._reopening && !dest._opening) reopening = false;
    // A failed write leaves its data buffered and no 'drain' follows: do not let flush() hang.
    idle = true;
    settle();
    report(err, err.code ?? err.message);
  });
  dest.on('close', () => {
    idle = true;
    settle();
    reportDropped();
  });
  /**
   * The count of dropped lines, once the backlog is written (at each write, a disk that keeps
   * falling behind had the two lines logged for every batch) or the destination closed.
   */
  function reportDropped(): void {
    if (dropped === 0) return;
    onError(new Error(`${dropped} audit lines were dropped while the audit destination was not taking them`));
    dropped = 0;
  }

  function end(resolve: () => void): void {
    const timer = setTimeout(() => {
      report(
        new Error('audit log did not finish writing in time; writing the rest synchronously'),
        'ETIMEDOUT',
      );
      flushSync(0);
      resolve();
    }, closeTimeoutMs);
    timer.unref();
    dest.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    // A write that fails now (a full disk) is not tried again and 'close' never comes: waiting for
    // it on an unref'd timer, the process ran out of work and exited in the middle of the shutdown
    // (exit code 0, no "stopped", the pid file left). One more synchronous try, then close the fd.
    dest.once('error', () => {
      clearTimeout(timer);
      flushSync();
      dest.destroy();
      reportDropped();
      resolve();
    });
    // SonicBoom drops a reopen that is still waiting for an in-flight write when end() comes in
    // between, and then never finishes: let the reopen complete first.
    if (reopening) dest.once('ready', () => dest.end());
    else dest.end();
  }

  /**
   * Writes SonicBoom's backlog and the pending lines before returning, with write(2) on this
   * thread: handed over as usual, they would start an async write that the process exit this often
   * serves could cut off. A write already in flight is SonicBoom's to finish (libuv still runs it at
   * exit, even one still queued): the newer lines wait until it has landed (up to `waitMs`; only a
   * regular file is written asynchronously, and it can be read back).
   */
  function flushSync(waitMs = closeTimeoutMs): void {
    try {
      if (dest.destroyed || broken || dest.fd < 0) {
        handOver();
        return;
      }
      const deadline = performance.now() + waitMs;
      const text = pending.take();
      scheduled = false;
      turnScheduled = false;
      // Newer lines must not land before the batch still being written.
      if (dest._writing && dest._writingBuf.length > 0)
        waitForWriteInFlight(dest.fd, dest._writingBuf, waitMs);
      writeBacklogSync(text, deadline);
      // Nothing left for SonicBoom to write, and no 'drain' will say so: flush() waits no longer.
      if (!dest._writing) {
        idle = true;
        settle();
      }
    } catch (err) {
      report(err as Error, 'EFLUSHSYNC');
    }
  }

  /**
   * SonicBoom's backlog (a batch whose write failed first), then `text`, written synchronously.
   * Not SonicBoom's flushSync(): it retries a failed write every 100 ms for as long as it fails,
   * whatever the error, so on a full disk (ENOSPC, EFBIG, EIO) the exit path never returned and a
   * gateway that crashed hung instead of exiting. Only EAGAIN (a full non-blocking pipe) is tried
   * again here, until `deadline`; any other failure gives up (reported as any failed write).
   */
  function writeBacklogSync(text: Buffer | undefined, deadline: number): void {
    const parts: Buffer[] = [];
    if (!dest._writing && dest._writingBuf.length > 0) {
      parts.push(dest._writingBuf);
      dest._writingBuf = Buffer.alloc(0);
    }
    for (const group of dest._bufs) parts.push(...group);
    if (text !== undefined) parts.push(text);
    dest._bufs = [];
    dest._lens = [];
    dest._len = dest._writing ? dest._writingBuf.length : 0;
    let rest = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    while (rest.length > 0) {
      try {
        rest = rest.subarray(writeSync(dest.fd, rest));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code === 'EAGAIN' || code === 'EBUSY') && performance.now() < deadline) {
          Atomics.wait(sleeper, 0, 0, 10);
          continue;
        }
        report(err as Error, code ?? (err as Error).message);
        return;
      }
    }
  }

  /** Whether a line may still be written (after close() it is dropped and reported once). */
  function open(): boolean {
    if (!(closed || dest.destroyed || broken)) return true;
    if (!broken) report(new Error('audit line dropped: the audit log is closed'), 'ERR_AUDIT_CLOSED');
    return false;
  }

  /** Hands the new line over with its batch: after BATCH_MS, or at the end of the turn once BATCH_BYTES wait. */
  function schedule(): void {
    if (pending.length >= BATCH_BYTES) {
      if (!turnScheduled) {
        turnScheduled = true;
        setImmediate(handOverTurn);
      }
    } else if (!scheduled) {
      scheduled = true;
      setTimeout(handOver, BATCH_MS).unref();
    }
  }

  return {
    file,
    write(record) {
      if (!open()) return;
      idle = false;
      pending.push(JSON.stringify(record));
      schedule();
    },
    append(source) {
      if (!open()) return;
      // A source that throws queues nothing (LineBuffer.append): the writer stays idle, so flush()
      // does not wait for a hand-over that never comes.
      pending.append(source);
      idle = false;
      schedule();
    },
    accepting() {
      if (broken) return false;
      const waiting = dest._len + pending.length;
      if (refusing) {
        if (waiting >= resumeAt) return false;
        refusing = false;
        onRefusing(false);
      } else if (waiting >= refuseAt) {
        refusing = true;
        onRefusing(true);
        return false;
      }
      return true;
    },
    lost: () => broken,
    // Opened at creation (a failure threw there).
    ready: () => Promise.resolve(),
    flush() {
      if (closing) return closing;
      handOver();
      if (idle) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    flushSync,
    reopen() {
      // Only a regular file is rotated. A named pipe or a device stays where it is, and opening a
      // pipe no reader holds (its log shipper restarting) blocks until one does: on this thread
      // (it is written synchronously), so a SIGHUP, a config reload's too, froze the whole gateway.
      if (file === undefined || !regular || closed || dest.destroyed) return;
      handOver();
      try {
        reopening = true;
        dest.reopen();
      } catch (err) {
        reopening = false;
        report(err as Error, 'EREOPEN');
      }
    },
    close() {
      if (closing) return closing;
      closed = true;
      handOver();
      exitHooks.delete(onExit);
      closing = new Promise<void>((resolve) => {
        if (dest.destroyed || broken) return resolve();
        end(resolve);
      });
      return closing;
    },
  };
}

/** How many lines (newlines) `bytes` holds. */
function countLines(bytes: Buffer): number {
  let n = 0;
  for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) n++;
  return n;
}

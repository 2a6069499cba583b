/**
 * The audit stream: one JSON line per record, written through pino's in-process destination
 * (SonicBoom, `sync: false`) to stdout, stderr or a file. No transports, no worker threads: the
 * product ships as one executable.
 *
 * The line is `JSON.stringify(record)`, handed straight to the destination rather than through a
 * pino logger: a logger would add `level` (pino cannot drop it without producing invalid JSON when
 * `timestamp` is off) and serialises key by key, which measured about 1.5x slower. The record owns
 * its `time` field.
 *
 * Nothing is lost at shutdown: `close()` waits for every buffered line to reach the fd; `flush()`
 * waits without closing; `flushSync()` is the last resort from a process 'exit' handler. With a
 * file output, `reopen()` (SIGHUP after logrotate) continues in a fresh file at the same path;
 * lines buffered before the call go to the old file, lines written after it to the new one.
 */
import { pino } from 'pino';

/** SonicBoom, with the public `destroyed` flag its type definitions leave out. */
type Destination = ReturnType<typeof pino.destination> & { readonly destroyed: boolean };

export interface AuditWriterOptions {
  /** `stdout`, `stderr`, or a file path (appended to, created with `fileMode`). */
  readonly output: string;
  /** Write failures (disk full, EPIPE, unopenable file). Repeats are reported once until a write succeeds. */
  readonly onError?: (err: Error) => void;
  /** Permissions of a created audit file. */
  readonly fileMode?: number;
}

export interface AuditWriter {
  /** The file path, or undefined for stdout/stderr. */
  readonly file: string | undefined;
  /** Appends one line (JSON of `record`). After close() it is dropped and reported once. */
  write(record: object): void;
  /** Resolves once the destination is open; rejects if a file cannot be opened (check at start). */
  ready(): Promise<void>;
  /** Resolves when every line written so far has reached the fd (or the destination failed). */
  flush(): Promise<void>;
  /** Writes what is buffered synchronously; best effort, never throws (for process 'exit'). */
  flushSync(): void;
  /** Reopens the file at the same path (logrotate); a no-op for stdout/stderr. */
  reopen(): void;
  /** Flushes, then closes (stdout/stderr stay open). Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_FILE_MODE = 0o640;

export function createAuditWriter(options: AuditWriterOptions): AuditWriter {
  const { output } = options;
  if (typeof output !== 'string' || output === '')
    throw new TypeError('audit output must be a non-empty string');
  const onError = options.onError ?? (() => {});
  const file = output === 'stdout' || output === 'stderr' ? undefined : output;
  const dest = (
    file === undefined
      ? pino.destination({ dest: output === 'stdout' ? 1 : 2, sync: false })
      : pino.destination({
          dest: file,
          sync: false,
          append: true,
          mkdir: false,
          mode: options.fileMode ?? DEFAULT_FILE_MODE,
        })
  ) as Destination;

  let opened = false;
  let openError: Error | undefined;
  let idle = true;
  let closed = false;
  let closing: Promise<void> | undefined;
  let lastErrorCode: string | undefined;
  let waiters: (() => void)[] = [];

  const settle = () => {
    const list = waiters;
    waiters = [];
    for (const resolve of list) resolve();
  };
  dest.on('ready', () => {
    opened = true;
  });
  dest.on('write', () => {
    lastErrorCode = undefined;
  });
  dest.on('drain', () => {
    idle = true;
    settle();
  });
  dest.on('error', (err: NodeJS.ErrnoException) => {
    if (!opened) openError ??= err;
    // A failed write leaves the data buffered and no 'drain' follows: do not let flush() hang.
    idle = true;
    settle();
    const code = err.code ?? err.message;
    if (code === lastErrorCode) return;
    lastErrorCode = code;
    onError(err);
  });
  dest.on('close', () => {
    idle = true;
    settle();
  });

  return {
    file,
    write(record) {
      if (closed) {
        if (lastErrorCode !== 'ERR_AUDIT_CLOSED') {
          lastErrorCode = 'ERR_AUDIT_CLOSED';
          onError(new Error('audit line written after the audit log was closed'));
        }
        return;
      }
      idle = false;
      dest.write(JSON.stringify(record) + '\n');
    },
    ready() {
      if (opened) return Promise.resolve();
      if (openError) return Promise.reject(openError);
      return new Promise((resolve, reject) => {
        const onReady = () => {
          dest.off('error', onFail);
          resolve();
        };
        const onFail = (err: Error) => {
          dest.off('ready', onReady);
          reject(err);
        };
        dest.once('ready', onReady);
        dest.once('error', onFail);
      });
    },
    flush() {
      if (idle || closing) return closing ?? Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    flushSync() {
      try {
        if (!dest.destroyed) dest.flushSync();
      } catch (err) {
        onError(err as Error);
      }
    },
    reopen() {
      if (file === undefined || closed) return;
      try {
        dest.reopen();
      } catch (err) {
        onError(err as Error);
      }
    },
    close() {
      if (closing) return closing;
      closed = true;
      closing = new Promise<void>((resolve) => {
        // A file that never opened has nothing to flush (SonicBoom would wait for 'ready' forever).
        if (dest.destroyed || openError !== undefined) return resolve();
        dest.once('close', () => resolve());
        dest.once('error', () => resolve());
        dest.end();
      });
      return closing;
    },
  };
}

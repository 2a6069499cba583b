/** What `mcpgate pin` does once the config is loaded: fetch, diff, print, write. Returns the exit code. */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { changedFields } from './canonical.ts';
import { fetchDefinitions, PinFetchError } from './fetch.ts';
import type { UpstreamTarget } from './fetch.ts';
import { diffLockfiles, LockfileError, lockfileOf, parseLockfile, serializeLockfile } from './lockfile.ts';
import type { Lockfile, LockfileDiff, PinKind } from './lockfile.ts';
import { escapeUnseen } from '../log/unseen.ts';

export interface PinRun {
  readonly upstream: UpstreamTarget;
  readonly lockfile: string;
  readonly check: boolean;
  readonly version: string;
}

export interface PinIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export async function runPin(run: PinRun, io: PinIo): Promise<number> {
  let definitions;
  try {
    definitions = await fetchDefinitions(run.upstream, 'mcpgate-pin', run.version);
  } catch (err) {
    if (!(err instanceof PinFetchError)) throw err;
    // The message may quote the upstream (its error's text): one line, nothing that drives a terminal.
    io.stderr(`mcpgate pin: ${escapeUnseen(err.message)}\n`);
    return 1;
  }
  const next = lockfileOf(definitions);
  const previous = await readPrevious(run.lockfile, io);
  const diff = diffLockfiles(previous, next, changedFields);
  io.stdout(describe(diff, next, run.lockfile, previous === undefined));
  const same = diff.added.length + diff.changed.length + diff.removed.length === 0;
  if (run.check) return same && previous !== undefined ? 0 : 1;
  if (same && previous !== undefined) return 0;
  // Written beside it and renamed: a gateway reloading at that moment reads the old file or the new one.
  const temporary = `${run.lockfile}.${process.pid}.tmp`;
  await writeFile(temporary, serializeLockfile(next), { mode: 0o644 });
  await rename(temporary, run.lockfile);
  io.stdout(
    `wrote ${run.lockfile}: review the diff, commit it, then reload the gateway (SIGHUP or restart)\n`,
  );
  return 0;
}

async function readPrevious(path: string, io: PinIo): Promise<Lockfile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return parseLockfile(text);
  } catch (err) {
    if (!(err instanceof LockfileError)) throw err;
    io.stderr(`${path}: the previous lockfile is not usable (${err.message}); comparing against nothing\n`);
    return undefined;
  }
}

const SINGULAR: Record<PinKind, string> = { tools: 'tool', prompts: 'prompt' };

/** A name written as it is: visible ASCII, nothing a reader could take for the line's syntax. */
const PLAIN = /^[A-Za-z0-9_./@:+-]+$/;

/**
 * A name or field as the upstream spelled it, safe to print: the summary is what the operator reviews
 * (a compromised upstream is what pinning guards against), and a name holding a line break forged
 * lines of it (`x\n  - tool search`), one holding terminal escapes erased the line announcing it.
 * Anything but a plain name is printed as a JSON string with those characters escaped too.
 */
function shown(name: string): string {
  return PLAIN.test(name) ? name : escapeUnseen(JSON.stringify(name));
}

function describe(diff: LockfileDiff, next: Lockfile, path: string, fresh: boolean): string {
  const lines: string[] = [];
  for (const { kind, name } of diff.added) lines.push(`  + ${SINGULAR[kind]} ${shown(name)}`);
  for (const { kind, name, fields } of diff.changed)
    lines.push(`  ~ ${SINGULAR[kind]} ${shown(name)}: ${fields.map(shown).join(', ')}`);
  for (const { kind, name } of diff.removed) lines.push(`  - ${SINGULAR[kind]} ${shown(name)}`);
  const counts = `${next.tools.size} tool(s), ${next.prompts.size} prompt(s)`;
  if (lines.length === 0) return `${path}: up to date (${counts})\n`;
  const head = fresh
    ? `${path}: new lockfile (${counts})`
    : `${path}: ${diff.added.length} added, ${diff.changed.length} changed, ${diff.removed.length} removed (${counts})`;
  return [head, ...lines].join('\n') + '\n';
}

/**
 * Pinning at serve time: judges each tool and prompt a list response carries against the
 * lockfile, and keeps what calls are judged by.
 *
 * A list entry passes when its definition's hash is its pin's. One that differs, is not in the
 * lockfile, or cannot be read as a client reads it (see canonical.ts readEntry) is hidden
 * (`on_change: hide`) or passed (`warn`); either way it is reported once per new definition.
 *
 * Calls. The gateway knows a tool's current definition only from the lists it read, so it keeps,
 * per process and across reloads (PinSightings), the hash of the latest definition of each name
 * seen in any list. A call (tools/call, prompts/get, a prompt completion) is refused, as if the
 * name did not exist, when the name is not in the lockfile (fail closed, seen or not) or its latest
 * definition seen is not its pin. A pinned name not seen since start is callable: no list the
 * gateway passed can have shown a client another definition of it (every list is judged entry by
 * entry, on every replica). The memory follows the latest list: a definition restored to its pin is
 * listed and callable again. An upstream that changes a definition only for some requests gets
 * each of those lists judged on its own (what is listed is always right); only the call check
 * follows whichever list came last. Replicas each keep their own memory and may disagree for a
 * moment about a name they have not all seen listed.
 *
 * Cost: verdicts are remembered by the bytes they were taken on (memory.ts), so only a new or
 * changed entry is parsed and hashed.
 */
import { hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { changedFields, definitionHash, definitionOf, readEntry } from './canonical.ts';
import { LockfileError, parseLockfile } from './lockfile.ts';
import { PinMemory } from './memory.ts';
import type { ListVerdicts, Verdict } from './memory.ts';
import type { Lockfile, PinKind } from './lockfile.ts';

export type PinMode = 'hide' | 'warn';

/** One change, as the warning, the audit line and the metric report it. */
export interface PinReport {
  readonly kind: PinKind;
  readonly name: string;
  /** `new`: not in the lockfile; `changed`: differs from its pin; `unreadable`: cannot be judged. */
  readonly change: 'new' | 'changed' | 'unreadable';
  /** For `changed`: the top-level fields that differ (description, inputSchema, …). */
  readonly fields: readonly string[];
  /** The SHA-256 of the definition seen (absent when unreadable). */
  readonly sha256: string | undefined;
}

/** The per-response judge the list filters call for each entry the key may otherwise see. */
export interface ListPins {
  /**
   * Optional, before the entries of one list: the list is body[open, end) (its `[` to after its
   * `]`) and holds `count` entries. Entries then passed with this same body are judged with the verdicts of an identical
   * list seen before, if any (one comparison for the whole list instead of one per entry).
   */
  startList(kind: PinKind, body: Uint8Array, open: number, end: number, count: number): void;
  /** Whether an entry, whose bytes as the client receives them are body[start, end), may pass. */
  pass(kind: PinKind, name: string, body: Uint8Array, start: number, end: number): boolean;
}

export interface Pinning {
  readonly mode: PinMode;
  /** A judge for one list response; `onReport` hears each change reported while reading it. */
  forList(onReport?: (report: PinReport) => void): ListPins;
  /** Whether a call to this tool or prompt may go upstream. */
  callable(kind: PinKind, name: string): boolean;
}

export interface PinningOptions {
  readonly lockfile: string;
  readonly on_change: PinMode;
}

export interface PinningDeps {
  /** Told each change once per new definition (operational warning and metric). */
  readonly report: (report: PinReport) => void;
  readonly readFile?: (path: string) => string;
  /** What lists showed, shared by every pinning built since start (reloads). */
  readonly sightings?: PinSightings;
}

/** Reported definitions remembered (so each is reported once); beyond, the memory starts over. */
const MAX_REPORTED = 10_000;

/** Builds pinning from the `pinning` config section; throws when the lockfile cannot be used. */
export function createPinning(options: PinningOptions, deps: PinningDeps): Pinning {
  const read = deps.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  let text: string;
  try {
    text = read(options.lockfile);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found (write it with `mcpgate pin`)' : 'cannot be read';
    throw new LockfileError([why], options.lockfile);
  }
  let lock: Lockfile;
  try {
    lock = parseLockfile(text);
  } catch (err) {
    if (err instanceof LockfileError) throw new LockfileError(err.problems, options.lockfile);
    throw err;
  }
  return pinningFor(lock, options.on_change, deps.report, deps.sightings);
}

/**
 * What lists showed, kept across config reloads (one per process, in the durable state): a reload
 * builds pinning again from the lockfile, but the definitions lists showed do not change with it,
 * so a tool last listed as changed stays uncallable, and a change already reported is not
 * reported again (nor is one a list still in flight across the reload reported to the old one).
 */
export class PinSightings {
  /**
   * Per name: the hash of the latest definition a list showed (UNREADABLE when none could be read);
   * names pinned or not, so a name a reload pins is judged by what was listed before it (at most
   * MAX_SEEN names not pinned; past that, new ones are not remembered and a reload-pinned one is
   * judged from its next list; a name the running lockfile pins is always remembered).
   */
  readonly seen: Record<PinKind, Map<string, string>> = { tools: new Map(), prompts: new Map() };
  /** The changes reported so far (each once). */
  readonly reported = new Set<string>();
  /** Bumped whenever a `seen` value changes (any pinning, old generations included). */
  version = 0;

  /**
   * `pinned`: the name is in the running lockfile. Such a name is always remembered, past MAX_SEEN
   * too (the lockfile bounds them): else an upstream listing MAX_SEEN other names first would have
   * a changed pinned tool go unremembered, and so stay callable.
   */
  note(kind: PinKind, name: string, hash: string, pinned = false): void {
    const map = this.seen[kind];
    if (map.get(name) === hash) return;
    if (!pinned && !map.has(name) && map.size >= MAX_SEEN) return;
    map.set(name, hash);
    this.version++;
  }
}

/** Names remembered per kind by PinSightings. */
const MAX_SEEN = 10_000;

/** The latest definition of a name could not be read (a repeated key, a lossy number). */
const UNREADABLE = '';

export function pinningFor(
  lock: Lockfile,
  mode: PinMode,
  report: (r: PinReport) => void,
  sightings: PinSightings = new PinSightings(),
): Pinning {
  const memory = new PinMemory<PinReport>();
  const { seen, reported } = sightings;
  // How many pinned names have a latest definition that is not their pin, under this lockfile: a
  // list whose every entry passes from memory skips recording only while there are none (see
  // startList). Counted again from `seen` whenever it changed since (a list of an older pinning,
  // in flight across a reload, records there too).
  const violating: Record<PinKind, number> = { tools: 0, prompts: 0 };
  let countedAt = -1;
  function violations(kind: PinKind): number {
    if (countedAt !== sightings.version) {
      countedAt = sightings.version;
      for (const k of ['tools', 'prompts'] as const) {
        let count = 0;
        for (const [name, pin] of lock[k]) {
          const latest = seen[k].get(name);
          if (latest !== undefined && latest !== pin.sha256) count++;
        }
        violating[k] = count;
      }
    }
    return violating[kind];
  }

  function judge(kind: PinKind, name: string, bytes: Uint8Array): Verdict<PinReport> {
    const known = memory.entry(kind, name, bytes);
    if (known !== undefined) return known;
    const raw = Buffer.from(bytes);
    const entry = readEntry(raw);
    let verdict: Verdict<PinReport>;
    if (entry === undefined || entry.name !== name) {
      verdict = { name, raw, ok: false, report: violation(kind, name, 'unreadable') };
    } else {
      const definition = definitionOf(entry);
      const sha256 = definitionHash(definition);
      const pin = lock[kind].get(name);
      if (pin === undefined) verdict = { name, raw, ok: false, report: violation(kind, name, 'new', sha256) };
      else if (pin.sha256 === sha256) verdict = { name, raw, ok: true, report: undefined };
      else {
        const fields = changedFields(pin.definition, definition);
        verdict = { name, raw, ok: false, report: violation(kind, name, 'changed', sha256, fields) };
      }
    }
    memory.remember(kind, verdict);
    return verdict;
  }

  function record(
    kind: PinKind,
    name: string,
    verdict: Verdict<PinReport>,
    onReport?: (r: PinReport) => void,
  ) {
    const pin = lock[kind].get(name);
    sightings.note(
      kind,
      name,
      verdict.ok && pin !== undefined ? pin.sha256 : (verdict.report?.sha256 ?? UNREADABLE),
      pin !== undefined,
    );
    const change = verdict.report;
    if (change === undefined) return;
    // An unreadable definition has no hash: its bytes tell one from another.
    const key = `${kind}\n${name}\n${change.sha256 ?? `raw:${hash('sha256', verdict.raw, 'hex')}`}`;
    if (reported.has(key)) return;
    if (reported.size >= MAX_REPORTED) reported.clear();
    reported.add(key);
    report(change);
    onReport?.(change);
  }

  return {
    mode,
    forList(onReport) {
      // The whole list being judged, when the caller said which (see ListPins.startList).
      let list:
        { kind: PinKind; body: Uint8Array; open: number; verdicts: ListVerdicts<PinReport> } | undefined;
      // That list was seen before, every entry of it judged and found as pinned, and nothing is
      // refused that it could make callable again: each entry passes without a lookup.
      let allPinned = false;
      return {
        startList(kind, body, open, end, count) {
          const verdicts = memory.list(kind, body, open, end);
          list = verdicts === undefined ? undefined : { kind, body, open, verdicts };
          allPinned =
            verdicts !== undefined &&
            verdicts.bad === 0 &&
            verdicts.byOffset.size === count &&
            violations(kind) === 0;
        },
        pass(kind, name, body, start, end) {
          let verdict: Verdict<PinReport> | undefined;
          if (list !== undefined && list.body === body && list.kind === kind) {
            if (allPinned) return true;
            const offset = start - list.open;
            verdict = list.verdicts.byOffset.get(offset);
            if (verdict === undefined || verdict.name !== name) {
              if (verdict !== undefined && !verdict.ok) list.verdicts.bad--;
              verdict = judge(kind, name, body.subarray(start, end));
              list.verdicts.byOffset.set(offset, verdict);
              if (!verdict.ok) list.verdicts.bad++;
            }
          } else verdict = judge(kind, name, body.subarray(start, end));
          record(kind, name, verdict, onReport);
          return verdict.ok || mode === 'warn';
        },
      };
    },
    callable(kind, name) {
      if (mode === 'warn') return true;
      const pin = lock[kind].get(name);
      if (pin === undefined) return false;
      // Not listed since start: callable; else as its latest definition compares with the pin.
      const latest = seen[kind].get(name);
      return latest === undefined || latest === pin.sha256;
    },
  };
}

function violation(
  kind: PinKind,
  name: string,
  change: PinReport['change'],
  sha256?: string,
  fields: readonly string[] = [],
): PinReport {
  return Object.freeze({ kind, name, change, fields, sha256 });
}

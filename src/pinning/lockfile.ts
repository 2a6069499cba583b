/**
 * The lockfile: for each tool and prompt the operator approved, the SHA-256 of its canonical
 * definition and the definition itself. JSON (exact: no YAML type guessing), two-space indented,
 * names and keys sorted, one field a line, so `git diff` of a re-pinned lockfile shows exactly
 * which text of which tool changed: the reviewer reads the new description, not only a new hash.
 *
 *   {
 *     "mcpgate_lockfile": 1,
 *     "tools": { "search": { "sha256": "…", "definition": { "description": "…", "name": "search", … } } },
 *     "prompts": {}
 *   }
 *
 * At load, each hash must be the hash of its definition, and each definition's name its key: a
 * hand edit of one without the other is an error, not a silent change of what is pinned.
 */
import { canonicalJson, definitionHash } from './canonical.ts';
import type { Definition } from './canonical.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';

export const LOCKFILE_VERSION = 1;

export type PinKind = 'tools' | 'prompts';
export const PIN_KINDS: readonly PinKind[] = ['tools', 'prompts'];

export interface Pin {
  readonly sha256: string;
  readonly definition: Definition;
}

export interface Lockfile {
  readonly tools: ReadonlyMap<string, Pin>;
  readonly prompts: ReadonlyMap<string, Pin>;
}

export class LockfileError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], path?: string) {
    super((path === undefined ? '' : `pinning.lockfile ${path}: `) + problems.join('; '));
    this.name = 'LockfileError';
    this.problems = problems;
  }
}

/** Builds a lockfile from definitions (each already without `_meta`). */
export function lockfileOf(definitions: Readonly<Record<PinKind, readonly Definition[]>>): Lockfile {
  const build = (list: readonly Definition[]) => {
    const pins = new Map<string, Pin>();
    for (const definition of list) {
      const name = definition.name;
      if (typeof name !== 'string') continue;
      pins.set(name, { sha256: definitionHash(definition), definition });
    }
    return pins;
  };
  return { tools: build(definitions.tools), prompts: build(definitions.prompts) };
}

/** The lockfile's text: stable for the same pins, so re-pinning an unchanged upstream is no diff. */
export function serializeLockfile(lock: Lockfile): string {
  const section = (pins: ReadonlyMap<string, Pin>) => {
    const out: Record<string, unknown> = {};
    for (const name of [...pins.keys()].sort()) {
      const pin = pins.get(name) as Pin;
      out[name] = { sha256: pin.sha256, definition: JSON.parse(canonicalJson(pin.definition)) as unknown };
    }
    return out;
  };
  const doc = {
    mcpgate_lockfile: LOCKFILE_VERSION,
    tools: section(lock.tools),
    prompts: section(lock.prompts),
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** Parses and checks a lockfile's text; throws LockfileError listing every problem. */
export function parseLockfile(text: string): Lockfile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new LockfileError([`not JSON (${(err as Error).message})`]);
  }
  if (!isPlainObject(doc)) throw new LockfileError(['must be a JSON object']);
  const problems: string[] = [];
  for (const key of Object.keys(doc)) {
    if (key !== 'mcpgate_lockfile' && key !== 'tools' && key !== 'prompts')
      problems.push(`${key}: unknown field (expected mcpgate_lockfile, tools, prompts)`);
  }
  if (doc.mcpgate_lockfile !== LOCKFILE_VERSION)
    problems.push(`mcpgate_lockfile: must be ${LOCKFILE_VERSION} (written by \`mcpgate pin\`)`);
  const section = (kind: PinKind): Map<string, Pin> => {
    const pins = new Map<string, Pin>();
    const value = doc[kind];
    // Absent is empty: fail closed, every such entry is unpinned.
    if (value === undefined) return pins;
    if (!isPlainObject(value)) {
      problems.push(`${kind}: must be an object of name -> pin`);
      return pins;
    }
    for (const [name, pin] of Object.entries(value)) {
      const at = `${kind}.${name}`;
      if (!isPlainObject(pin) || typeof pin.sha256 !== 'string' || !isPlainObject(pin.definition)) {
        problems.push(`${at}: must be { "sha256": "<64 hex>", "definition": { … } }`);
        continue;
      }
      if (!/^[0-9a-f]{64}$/.test(pin.sha256)) {
        problems.push(`${at}.sha256: not a lowercase hex SHA-256`);
        continue;
      }
      if (pin.definition.name !== name) {
        problems.push(`${at}.definition.name: must be ${JSON.stringify(name)}`);
        continue;
      }
      if (Object.hasOwn(pin.definition, '_meta')) {
        problems.push(`${at}.definition._meta: is never pinned; remove it`);
        continue;
      }
      if (definitionHash(pin.definition) !== pin.sha256) {
        problems.push(`${at}.sha256: is not the hash of its definition (re-run \`mcpgate pin\`)`);
        continue;
      }
      pins.set(name, { sha256: pin.sha256, definition: pin.definition });
    }
    return pins;
  };
  const lock = { tools: section('tools'), prompts: section('prompts') };
  if (problems.length > 0) throw new LockfileError(problems);
  return lock;
}

export interface LockfileDiff {
  readonly added: readonly { kind: PinKind; name: string }[];
  readonly changed: readonly { kind: PinKind; name: string; fields: readonly string[] }[];
  readonly removed: readonly { kind: PinKind; name: string }[];
}

/** What `next` adds, changes and removes against `previous` (an absent previous is empty). */
export function diffLockfiles(
  previous: Lockfile | undefined,
  next: Lockfile,
  changedFields: (a: Definition, b: Definition) => string[],
): LockfileDiff {
  const added: { kind: PinKind; name: string }[] = [];
  const changed: { kind: PinKind; name: string; fields: string[] }[] = [];
  const removed: { kind: PinKind; name: string }[] = [];
  for (const kind of PIN_KINDS) {
    const before = previous?.[kind] ?? new Map<string, Pin>();
    const after = next[kind];
    for (const name of [...after.keys()].sort()) {
      const pin = after.get(name) as Pin;
      const old = before.get(name);
      if (old === undefined) added.push({ kind, name });
      else if (old.sha256 !== pin.sha256)
        changed.push({ kind, name, fields: changedFields(old.definition, pin.definition) });
    }
    for (const name of [...before.keys()].sort()) if (!after.has(name)) removed.push({ kind, name });
  }
  return { added, changed, removed };
}

/**
 * The canonical form of a tool or prompt definition, and its SHA-256: what a pin holds.
 *
 * The definition is the list entry itself, minus its top-level `_meta` (machine metadata that
 * servers may vary freely) but for the members of it hosts render (definitionOf); a `_meta` inside
 * a schema is kept, it is a property the model reads.
 * Every other field is pinned, not only the ones named today (name, title, description,
 * inputSchema, outputSchema, annotations for tools; name, title, description, arguments for
 * prompts): a client may show its model or its user any field, including `icons` (shown to the
 * user approving a call, and fetched from their `src`) and fields a later protocol revision adds,
 * so a field the gateway does not know is pinned rather than trusted.
 *
 * Canonical JSON is JSON.stringify of the value with every object's keys sorted by UTF-16 code
 * units at every depth: the same text as RFC 8785 (JCS) gives for JSON numbers and strings.
 */
import { createHash } from 'node:crypto';
import { parsedAsSpelled } from '../jsonrpc/key-check.ts';

export type Definition = Readonly<Record<string, unknown>>;

/** The JSON text of `value` with object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(sortKeys);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    // defineProperty: a `__proto__` key stays an ordinary key, as JSON.parse made it.
    Object.defineProperty(out, key, {
      value: sortKeys((value as Record<string, unknown>)[key]),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * The pinned part of a list entry: everything but its top-level `_meta`, of which only the members
 * hosts render are kept (RENDERED_META: MCP Apps' `ui` and `ui/…`, the Apps SDK's `openai/…`: the
 * page a host shows for a tool, the text it shows the user while it runs). The rest of `_meta` is
 * machine metadata servers may vary freely (build ids, timestamps).
 */
export function definitionOf(entry: Readonly<Record<string, unknown>>): Definition {
  if (!Object.hasOwn(entry, '_meta')) return entry;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(entry)) {
    const value = key === '_meta' ? renderedMeta(entry[key]) : entry[key];
    if (value === undefined) continue;
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The members of a `_meta` a host renders, or undefined when it has none (or is not an object). */
function renderedMeta(meta: unknown): Record<string, unknown> | undefined {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  let kept: Record<string, unknown> | undefined;
  for (const key of Object.keys(meta))
    if (RENDERED_META.test(key))
      Object.defineProperty((kept ??= {}), key, {
        value: (meta as Record<string, unknown>)[key],
        enumerable: true,
        writable: true,
        configurable: true,
      });
  return kept;
}

/** `_meta` members hosts render: MCP Apps (`ui`, `ui/resourceUri`), the OpenAI Apps SDK (`openai/…`). */
const RENDERED_META = /^(?:ui|ui\/.*|openai\/.*)$/;

/** SHA-256 (hex) of the canonical JSON of a definition. */
export function definitionHash(definition: Definition): string {
  return createHash('sha256').update(canonicalJson(definition)).digest('hex');
}

/** The top-level fields whose canonical values differ between two definitions, sorted. */
export function changedFields(pinned: Definition, current: Definition): string[] {
  const keys = new Set([...Object.keys(pinned), ...Object.keys(current)]);
  const changed: string[] = [];
  for (const key of keys) {
    const a = Object.hasOwn(pinned, key) ? canonicalJson(pinned[key]) : undefined;
    const b = Object.hasOwn(current, key) ? canonicalJson(current[key]) : undefined;
    if (a !== b) changed.push(key);
  }
  return changed.sort();
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reads one list entry's raw JSON bytes as a client will: strict UTF-8 and JSON, an object with a
 * string `name`, and no key repeated in any object. A repeated key is read as its first value by
 * some parsers and its last by others, so the definition a client reads could differ from the one
 * hashed: such an entry (and anything else unreadable) is undefined, which never matches a pin.
 */
export function readEntry(bytes: Uint8Array): Readonly<Record<string, unknown>> | undefined {
  let text: string;
  let value: unknown;
  try {
    text = decoder.decode(bytes);
    if (text.charCodeAt(0) === 0xfeff) return undefined;
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  if (typeof (value as { name?: unknown }).name !== 'string') return undefined;
  // The entry's bytes pass on and the hash is of the value: a key V8 read as another (a pinned
  // definition's key holding a backslash, from the lockfile's own parse, can prime it) is unreadable.
  if (!parsedAsSpelled(text, value)) return undefined;
  if (holdsLossyNumber(text)) return undefined;
  return repeatsKey(text) ? undefined : (value as Record<string, unknown>);
}

/**
 * Whether a JSON text (valid) spells a number a double does not hold: out of its range (`1e400` is
 * Infinity, which the hash writes as null, so `-1e400` would hash the same and reach a client as
 * another number), or an integer past 2^53 it rounds (`9007199254740993`). Clients differ on such
 * numbers (some keep them exact), so a definition holding one is not the one hashed. `1.0`, `-0`
 * and other spellings of a double's value are not lossy. Only text with a long digit run or an
 * exponent is parsed again (with its numbers' spelling: JSON.parse source text access).
 */
export function holdsLossyNumber(text: string): boolean {
  if (!MAY_BE_LOSSY.test(text)) return false;
  let lossy = false;
  JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    if (typeof value === 'number' && !lossy) {
      const source = context?.source;
      if (!Number.isFinite(value)) lossy = true;
      else if (source !== undefined && INTEGER.test(source) && !Number.isSafeInteger(value))
        lossy = BigInt(source) !== BigInt(value);
    }
    return value;
  });
  return lossy;
}

/** An exponent, or 16 digits in a row (the shortest integer past 2^53 has 16). */
const MAY_BE_LOSSY = /\d[eE]|\d{16}/;
const INTEGER = /^-?\d+$/;

/** Whether any object in a valid JSON text has the same key twice (after unescaping). */
export function repeatsKey(text: string): boolean {
  // Each open container: the keys seen so far for an object, undefined for an array.
  const stack: (Set<string> | undefined)[] = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x22) break;
        if (d === 0x5c) {
          escaped = true;
          j++;
        }
        j++;
      }
      if (expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        const keys = stack[stack.length - 1] as Set<string>;
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b) {
      stack.push(undefined);
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c) {
      expectKey = stack[stack.length - 1] !== undefined;
    }
  }
  return false;
}

/**
 * Matching a `tools/list` or `prompts/list` response in one pass over its bytes (a page of 1,000
 * tools is ~660 KiB: decoding, JSON.parse, splicing the id into a string and encoding it again cost
 * several times the scan). policy/list-scan.ts validates the body strictly and finds its id, its
 * lists and each entry's name; the id must be a tag this exchange may answer and its plan a list;
 * then the entries the key may not see are dropped (and, with pinning, each entry is judged on its
 * bytes), and the output is written once: the body's own bytes with the client's id spliced in and
 * the kept entries copied as they are (numbers, escapes and key order unchanged).
 *
 * A large response whose request planned nothing (a `tools/list` for a key allowed every tool, a big
 * tool result) takes the same pass and gets only its id spliced in.
 *
 * Any other shape or plan is left to the parsed path (match.ts), before anything is answered.
 */
import type { ResponseIds } from './restore.ts';
import type { Filters } from './match.ts';
import type { Grants } from '../policy/grants.ts';
import { NOT_JSON, OTHER } from '../policy/list-scan.ts';
import { scanListResponseMemo } from '../policy/list-scan-memo.ts';
import type { ScannedKind, ScannedList } from '../policy/list-scan.ts';

/** The response must not reach the client: it answers no request this exchange may answer. */
export const REFUSED = Symbol('refused');
export { NOT_JSON } from '../policy/list-scan.ts';

/** Below this many bytes the parsed path costs about as much as the scan. */
export const LIST_MIN_BYTES = 4096;

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA_PIECE = Buffer.from(',');
/**
 * More pieces than this (an allowlist that keeps every other entry) are joined into one Buffer: each
 * piece is one write call on the response, which costs more than copying a few hundred bytes.
 */
export const MAX_PIECES = 64;

/**
 * The bytes to send for a list response, in order, REFUSED, NOT_JSON (the body is not JSON or not
 * UTF-8), or undefined when the parsed path must decide (nothing has been answered then). The pieces
 * never view `body`: a body the memo remembered (list-scan-memo.ts) is answered with views of the
 * memo's immutable copy, which holds the same bytes except the id (which the client's replaces), and
 * any other body's pieces are copied into one Buffer, so the caller may reuse `body`'s buffer at once.
 */
export function matchListResponse(
  body: Buffer,
  ids: ResponseIds,
  filters: Filters,
): readonly Buffer[] | typeof REFUSED | typeof NOT_JSON | undefined {
  const scanned = scanListResponseMemo(body);
  if (scanned === NOT_JSON) return NOT_JSON;
  if (scanned === OTHER) return undefined;
  const { scan, source } = scanned;
  const id = readString(body, scanned.idStart, scanned.idEnd);
  const named = ids.name(id);
  // What ids.answer() would refuse too: no request of this exchange has this id.
  if (named === undefined) return REFUSED;
  const kind = named.plan;
  if (kind !== 'tools' && kind !== 'prompts' && kind !== 'none') return undefined;
  // The other kind's list beside the one asked for: the parsed path drops it (filter-list.ts).
  if (kind !== 'none' && scan[kind === 'tools' ? 'prompts' : 'tools'] !== undefined) return undefined;
  const untagged = ids.answer(id);
  if (untagged === undefined) return REFUSED;
  const clientId = Buffer.from(JSON.stringify(untagged.clientId));
  const list = kind === 'none' ? undefined : scan[kind];
  const kept = list === undefined || kind === 'none' ? undefined : keptEntries(source, kind, list, filters);
  const pieces = splice(source, scan.idStart, scan.idEnd, clientId, list, kept);
  return source === body || pieces.length > MAX_PIECES ? [Buffer.concat(pieces)] : pieces;
}

/**
 * What each key's grants kept of a list, by the scanned list: a remembered catalogue (its scan is the
 * memo's, list-scan-memo.ts) asked again by the same key is judged once. Grants are compiled once per
 * key or token grant and never change (a reload compiles new ones), and a list's positions and names
 * are those of bytes that never change, so the answer holds for as long as both live. Not with pins:
 * pinning judges each entry's bytes against a lockfile that a reload may change under the same grants.
 */
const keptByList = new WeakMap<ScannedList, WeakMap<Grants, readonly number[] | typeof EVERY>>();
/** Every entry stays. */
const EVERY = Symbol('every entry');

/** The [start, end) pairs of the entries that stay, or undefined when every entry stays. */
function keptEntries(
  body: Buffer,
  kind: ScannedKind,
  list: ScannedList,
  filters: Filters,
): readonly number[] | undefined {
  const { grants, pins } = filters;
  const every = kind === 'tools' ? grants.everyTool === true : grants.everyPrompt === true;
  if (every && pins === undefined) return undefined;
  if (pins !== undefined) return judgeEntries(body, kind, list, grants, every, pins);
  let byGrants = keptByList.get(list);
  if (byGrants === undefined) keptByList.set(list, (byGrants = new WeakMap()));
  let kept = byGrants.get(grants);
  if (kept === undefined) {
    kept = judgeEntries(body, kind, list, grants, every, undefined) ?? EVERY;
    byGrants.set(grants, kept);
  }
  return kept === EVERY ? undefined : kept;
}

function judgeEntries(
  body: Buffer,
  kind: ScannedKind,
  list: ScannedList,
  grants: Grants,
  every: boolean,
  pins: Filters['pins'],
): number[] | undefined {
  const items = list.items;
  const names = list.names;
  pins?.startList(kind, body, list.open, list.end, items.length / 4);
  const allowed = kind === 'tools' ? grants.tool : grants.prompt;
  const kept: number[] = [];
  let removed = false;
  for (let k = 0; k < items.length; k += 4) {
    const start = items[k] as number;
    const end = items[k + 1] as number;
    const nameStart = items[k + 2] as number;
    const nameEnd = items[k + 3] as number;
    // An entry that is not an object with a string name is dropped (fail closed).
    let name = names[k / 4];
    if (name === undefined) {
      name = nameStart !== -1 && body[nameStart] === QUOTE ? readString(body, nameStart, nameEnd) : null;
      names[k / 4] = name;
    }
    if (
      name !== null &&
      (every || allowed(name)) &&
      (pins === undefined || pins.pass(kind, name, body, start, end))
    ) {
      kept.push(start, end);
    } else removed = true;
  }
  return removed ? kept : undefined;
}

/** The JSON string at body[start, end) (validated by the scan). */
function readString(body: Buffer, start: number, end: number): string {
  for (let k = start + 1; k < end - 1; k++) {
    if (body[k] === BACKSLASH) return JSON.parse(decoder.decode(body.subarray(start, end))) as string;
  }
  return decoder.decode(body.subarray(start + 1, end - 1));
}

/**
 * The body with the id replaced and, when `kept` is set, the list holding only those entries: views
 * of `body` and the client's id, with runs of entries that were next to each other (one comma
 * between them) kept as one view.
 */
function splice(
  body: Buffer,
  idStart: number,
  idEnd: number,
  clientId: Buffer,
  list: ScannedList | undefined,
  kept: readonly number[] | undefined,
): Buffer[] {
  const pieces: Buffer[] = [];
  /** The run of `body` not yet pushed: [runStart, runEnd). */
  let runStart = 0;
  let runEnd = 0;
  const flush = () => {
    if (runEnd > runStart) pieces.push(body.subarray(runStart, runEnd));
  };
  /** Appends body[start, end), after a comma when `comma` is set. */
  const add = (start: number, end: number, comma: boolean) => {
    if (comma && runEnd + 1 === start && body[runEnd] === COMMA) runEnd = end;
    else if (!comma && runEnd === start) runEnd = end;
    else {
      flush();
      if (comma) pieces.push(COMMA_PIECE);
      runStart = start;
      runEnd = end;
    }
  };
  const writeId = (from: number) => {
    add(from, idStart, false);
    flush();
    pieces.push(clientId);
    runStart = runEnd = idEnd;
  };
  // The inside of the list's brackets is replaced by the kept entries, joined by commas.
  const inner = list !== undefined && kept !== undefined ? list : undefined;
  let from = 0;
  if (inner === undefined || kept === undefined || idStart < inner.open) {
    writeId(0);
    from = idEnd;
  }
  if (inner !== undefined && kept !== undefined) {
    add(from, inner.open + 1, false);
    for (let k = 0; k < kept.length; k += 2) add(kept[k] as number, kept[k + 1] as number, k > 0);
    from = inner.end - 1;
    if (idStart > inner.open) {
      writeId(from);
      from = idEnd;
    }
  }
  add(from, body.length, false);
  flush();
  return pieces;
}

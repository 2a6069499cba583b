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

/**
 * The bytes to send for a list response, REFUSED, NOT_JSON (the body is not JSON or not UTF-8), or
 * undefined when the parsed path must decide (nothing has been answered then).
 */
export function matchListResponse(
  body: Buffer,
  ids: ResponseIds,
  filters: Filters,
): Buffer | typeof REFUSED | typeof NOT_JSON | undefined {
  const scanned = scanListResponseMemo(body);
  if (scanned === NOT_JSON) return NOT_JSON;
  if (scanned === OTHER) return undefined;
  const id = readString(body, scanned.idStart, scanned.idEnd);
  const named = ids.name(id);
  // What ids.answer() would refuse too: no request of this exchange has this id.
  if (named === undefined) return REFUSED;
  const kind = named.plan;
  if (kind !== 'tools' && kind !== 'prompts' && kind !== 'none') return undefined;
  const untagged = ids.answer(id);
  if (untagged === undefined) return REFUSED;
  const clientId = Buffer.from(JSON.stringify(untagged.clientId));
  const list = kind === 'none' ? undefined : scanned[kind];
  const kept = list === undefined || kind === 'none' ? undefined : keptEntries(body, kind, list, filters);
  return splice(body, scanned.idStart, scanned.idEnd, clientId, list, kept);
}

/** The [start, end) pairs of the entries that stay, or undefined when every entry stays. */
function keptEntries(
  body: Buffer,
  kind: ScannedKind,
  list: ScannedList,
  filters: Filters,
): number[] | undefined {
  const { grants, pins } = filters;
  const every = kind === 'tools' ? grants.everyTool === true : grants.everyPrompt === true;
  if (every && pins === undefined) return undefined;
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

/** The body with the id replaced and, when `kept` is set, the list holding only those entries. */
function splice(
  body: Buffer,
  idStart: number,
  idEnd: number,
  clientId: Buffer,
  list: ScannedList | undefined,
  kept: number[] | undefined,
): Buffer {
  let size = body.length - (idEnd - idStart) + clientId.length;
  // The inside of the list's brackets is replaced by the kept entries, joined by commas.
  const inner = list !== undefined && kept !== undefined ? list : undefined;
  if (inner !== undefined && kept !== undefined) {
    size -= inner.end - inner.open - 2;
    for (let k = 0; k < kept.length; k += 2) size += (kept[k + 1] as number) - (kept[k] as number);
    size += Math.max(0, kept.length / 2 - 1);
  }
  const out = Buffer.allocUnsafe(size);
  let from = 0;
  let at = 0;
  const writeId = () => {
    at += body.copy(out, at, from, idStart);
    at += clientId.copy(out, at);
    from = idEnd;
  };
  if (inner === undefined || kept === undefined || idStart < inner.open) writeId();
  if (inner !== undefined && kept !== undefined) {
    at += body.copy(out, at, from, inner.open + 1);
    for (let k = 0; k < kept.length; k += 2) {
      if (k > 0) out[at++] = COMMA;
      at += body.copy(out, at, kept[k] as number, kept[k + 1] as number);
    }
    from = inner.end - 1;
    if (idStart > inner.open) writeId();
  }
  at += body.copy(out, at, from);
  if (at !== size) throw new TypeError('list splice size mismatch');
  return out;
}

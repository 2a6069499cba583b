/**
 * The last few list responses that passed the strict scan (list-scan.ts), kept so that the next one
 * with the same bytes is not walked again. An upstream answers `tools/list` with the same catalogue
 * until it changes, and each answer differs only in its id (the gateway's tag for that request):
 * walking 660 KiB byte by byte costs ~1 ms, comparing it with a remembered copy ~30 µs (native).
 *
 * A body is taken as a remembered one only when it is that body with another JSON string as its id:
 * the bytes before the id value are equal, the new id is a whole JSON string by the strict grammar
 * and valid UTF-8, and every byte after it is equal. Swapping one string value for another leaves
 * the body valid JSON with the same members, lists, entries and names, which is all the scan reads
 * (the id only has to be a string); every other body is scanned. The copies are the memo's own, so
 * nothing that reuses a read buffer can change what they say.
 *
 * Memory: at most MEMO_ENTRIES bodies of at most MEMO_MAX_BYTES each, outside the held-body budget.
 */
import { isUtf8 } from 'node:buffer';
import { NOT_JSON, QUOTE, string } from '../jsonrpc/strict-skip.ts';
import { OTHER, scanListResponse } from './list-scan.ts';
import type { ListResponse } from './list-scan.ts';

/** How many distinct list bodies are remembered (pages of a paginated list, tools and prompts). */
export const MEMO_ENTRIES = 4;
/** Larger bodies are scanned every time (a catalogue of 1,000 tools is ~660 KiB). */
export const MEMO_MAX_BYTES = 4 * 1024 * 1024;

interface Remembered {
  readonly bytes: Buffer;
  readonly scan: ListResponse;
}

/** Most recently used first. */
const memo: Remembered[] = [];
let hits = 0;

/**
 * A body's scan and the bytes its positions index. On a hit, `source` is the remembered copy: the
 * same bytes as the body except the id, immutable (the memo's own), so what is kept of it can be sent
 * as views of it while the body's buffer holds the next response; `scan` indexes that copy. On a
 * miss, `source` is the body itself. `idStart`/`idEnd` are the id's extent in the body either way.
 */
export interface MemoScan {
  readonly scan: ListResponse;
  readonly source: Buffer;
  readonly idStart: number;
  readonly idEnd: number;
}

/** Like scanListResponse, answering from the memo when `b` is a remembered body with another id. */
export function scanListResponseMemo(b: Buffer): MemoScan | typeof OTHER | typeof NOT_JSON {
  for (let k = 0; k < memo.length; k++) {
    const entry = memo[k] as Remembered;
    const idEnd = recall(entry, b);
    if (idEnd === -1) continue;
    hits++;
    if (k > 0) {
      memo.splice(k, 1);
      memo.unshift(entry);
    }
    return { scan: entry.scan, source: entry.bytes, idStart: entry.scan.idStart, idEnd };
  }
  const scan = scanListResponse(b);
  if (scan === OTHER || scan === NOT_JSON) return scan;
  if (b.length <= MEMO_MAX_BYTES && (scan.tools !== undefined || scan.prompts !== undefined))
    remember(b, scan);
  return { scan, source: b, idStart: scan.idStart, idEnd: scan.idEnd };
}

/** How many scans the memo answered (for tests and benchmarks). */
export function memoHits(): number {
  return hits;
}

/** Forgets every remembered body; returns the bytes the copies held. */
export function clearListScanMemo(): number {
  let bytes = 0;
  for (const entry of memo) bytes += entry.bytes.length;
  memo.length = 0;
  return bytes;
}

function remember(b: Buffer, scan: ListResponse): void {
  const bytes = Buffer.allocUnsafeSlow(b.length);
  b.copy(bytes);
  if (memo.length >= MEMO_ENTRIES) memo.pop();
  memo.unshift({ bytes, scan });
}

/** The end of `b`'s id when `b` is `entry`'s body with another string id, else -1. */
function recall(entry: Remembered, b: Buffer): number {
  const { bytes, scan } = entry;
  const { idStart, idEnd } = scan;
  const tail = bytes.length - idEnd;
  // The new id must leave room for at least an empty string and the same tail.
  if (b.length < idStart + 2 + tail || b[idStart] !== QUOTE) return -1;
  if (b.compare(bytes, 0, idStart, 0, idStart) !== 0) return -1;
  let end: number;
  try {
    end = string(b, idStart);
  } catch (err) {
    if (err === NOT_JSON) return -1;
    throw err;
  }
  if (b.length - end !== tail) return -1;
  if (b.compare(bytes, idEnd, bytes.length, end, b.length) !== 0) return -1;
  if (!isUtf8(b.subarray(idStart, end))) return -1;
  return end;
}

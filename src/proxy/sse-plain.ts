/**
 * The plain SSE block, as MCP servers write one event (the SDK's `event: message`, an optional
 * `id:`, one `data:` line): `[event: V\n][id: V\n]data: D\n\n`, LF line ends only, no comment, no
 * other field, no byte order mark. For such a block, the bytes serializeEvent (sse.ts) writes for
 * its parsed fields with data D' are the block's bytes with D replaced by D': a rewrite can splice
 * the data in place of parsing the block and writing it again.
 */

import { bytesAt } from './sse.ts';

const LF = 0x0a;
const CR = 0x0d;
const EVENT = Buffer.from('event: ');
const ID = Buffer.from('id: ');
const DATA = Buffer.from('data: ');

/**
 * Where the data of a plain block starts (its value, after `data: `); the data ends 2 bytes before
 * the block does. -1 when `raw` is not a plain block (the parse then decides).
 */
export function plainDataStart(raw: Uint8Array): number {
  const n = raw.length;
  // The data line's LF and the blank line's; no CR anywhere (a CR ends a line too).
  if (n < DATA.length + 2 || raw[n - 1] !== LF || raw[n - 2] !== LF || raw.indexOf(CR) !== -1) return -1;
  let at = 0;
  if (bytesAt(raw, at, EVENT)) at = raw.indexOf(LF, at) + 1;
  if (bytesAt(raw, at, ID)) {
    const end = raw.indexOf(LF, at);
    // An id with NUL is ignored by a parse (and dropped by the writer): not plain.
    if (raw.subarray(at, end).indexOf(0) !== -1) return -1;
    at = end + 1;
  }
  if (!bytesAt(raw, at, DATA)) return -1;
  const start = at + DATA.length;
  // One data line, ending where the block's blank line starts.
  return raw.indexOf(LF, start) === n - 2 ? start : -1;
}

/**
 * Where the value of a plain block's `id:` line starts (after `id: `), or -1 when the block is not
 * plain or has no id line. The value ends at the next LF.
 */
export function plainIdStart(raw: Uint8Array): number {
  if (plainDataStart(raw) === -1) return -1;
  const at = bytesAt(raw, 0, EVENT) ? raw.indexOf(LF) + 1 : 0;
  return bytesAt(raw, at, ID) ? at + ID.length : -1;
}

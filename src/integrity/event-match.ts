/**
 * An SSE event matched by its bytes, before the parse of match.ts (matchEventData): the two events
 * a tool call's stream is made of, in the plain block servers write (proxy/sse-plain.ts).
 *
 * - The response to the exchange's one request, small and planning nothing: small-match.ts on the
 *   event's data, spliced in place (the same bytes the parse would write for the event).
 * - A notification that names no request: it passes as it is, as the parse would pass it. Named
 *   here strictly: one object whose keys hold no escape, with `"method"`, no `"id"`, `"result"` or
 *   `"error"`, and `"params"` (at most once) absent, not an object, or an object whose own keys
 *   hold no escape and include none of `"requestId"` (a cancellation names its request there),
 *   `"_meta"` (where a subscription id would be), `"uri"` and `"taskId"` or a key a case-folding
 *   client reads as one (a resource an update names, a task a status names, which the key may not
 *   use: policy/hidden-updates.ts); `"method"`
 *   once, its value neither a task status's method (one without a `taskId` is dropped too) nor a
 *   string with an escape, and no top-level key such a client reads as a member of the message (`"Params"`); valid
 *   JSON to the last byte; the block valid UTF-8.
 *
 * Anything else, valid or not, is left to the parse before anything is answered (undefined).
 * test/unit/integrity/event-match-differential.test.ts compares the two on generated streams.
 */
import { isUtf8 } from 'node:buffer';
import {
  CLOSE_OBJECT,
  COMMA,
  escaped,
  OPEN_OBJECT,
  QUOTE,
  string,
  value,
  ws,
} from '../jsonrpc/strict-skip.ts';
import { plainDataStart } from '../proxy/sse-plain.ts';
import type { ResponseIds } from './restore.ts';
import { LIST_MIN_BYTES } from './list-match.ts';
import { matchSmallSpan } from './small-match.ts';
import { bytesAre, plainObjectEnd, valueStart } from './plain-members.ts';
import { isVariantAt, MESSAGE_MEMBERS } from '../policy/case-variants.ts';
import { STATUS_PARAMS, UPDATE_PARAMS } from '../policy/hidden-updates.ts';

/** The block passes as it is. */
export const PASS = null;

/** The replacement block, PASS, or undefined: the parse decides (nothing was answered). */
export function matchEventBytes(raw: Buffer, ids: ResponseIds): Buffer | typeof PASS | undefined {
  const start = plainDataStart(raw);
  if (start === -1) return undefined;
  const end = raw.length - 2;
  if (end - start >= LIST_MIN_BYTES) return undefined;
  const answered = matchSmallSpan(raw, start, end, ids);
  if (answered !== undefined) return answered;
  // Every field UTF-8: the parse writes a block that is not again (sse-rewrite.ts).
  return namesNoRequest(raw, start, end) && isUtf8(raw) ? PASS : undefined;
}

const METHOD = 1;
const REFUSED = 2;
const PARAMS = 3;

/** Whether b[from, to) is a notification naming no request, in the shape above. Never throws. */
function namesNoRequest(raw: Buffer, from: number, to: number): boolean {
  try {
    return scan(raw.subarray(from, to));
  } catch {
    return false;
  }
}

function scan(b: Uint8Array): boolean {
  let i = ws(b, 0);
  if (b[i] !== OPEN_OBJECT) return false;
  let method = false;
  let params = false;
  i = ws(b, i + 1);
  for (;;) {
    if (b[i] !== QUOTE) return false;
    const keyEnd = string(b, i);
    if (escaped) return false;
    const kind = topKey(b, i + 1, keyEnd - 1);
    if (kind === REFUSED) return false;
    const vs = valueStart(b, keyEnd);
    let ve: number;
    if (kind === PARAMS) {
      // A repeated params is the parse's to judge (restore.ts, read-once.ts).
      if (params) return false;
      params = true;
    }
    if (kind === PARAMS && b[vs] === OPEN_OBJECT) {
      ve = plainObjectEnd(b, vs, isNamingKey);
      if (ve === -1) return false;
    } else ve = value(b, vs, 1);
    if (kind === METHOD) {
      // A repeated method is the parse's to judge (a first-wins client reads the first).
      if (method) return false;
      method = true;
      // So is a task's status: one naming no task by a `taskId` is dropped (hidden-updates.ts).
      if (mayBeStatus(b, vs)) return false;
    }
    i = ws(b, ve);
    if (b[i] === COMMA) {
      i = ws(b, i + 1);
      continue;
    }
    if (b[i] !== CLOSE_OBJECT) return false;
    break;
  }
  return method && ws(b, i + 1) === b.length;
}

/** Whether the value at b[at] is a method a task's status is sent with, or a string with an escape. */
function mayBeStatus(b: Uint8Array, at: number): boolean {
  if (b[at] !== QUOTE) return false;
  const end = string(b, at);
  return (
    escaped ||
    bytesAre(b, at + 1, end - 1, 'notifications/tasks/status') ||
    bytesAre(b, at + 1, end - 1, 'notifications/tasks')
  );
}

/**
 * Which top-level key the unescaped key in b[from, to) is (0: another). One a case-folding client
 * reads as a member of the message (`"Params"`) is refused, as the parse refuses it (restore.ts).
 */
function topKey(b: Uint8Array, from: number, to: number): number {
  if (isVariantAt(b, from - 1, to + 1, MESSAGE_MEMBERS)) return REFUSED;
  switch (to - from) {
    case 2:
      return bytesAre(b, from, to, 'id') ? REFUSED : 0;
    case 5:
      return bytesAre(b, from, to, 'error') ? REFUSED : 0;
    case 6:
      if (bytesAre(b, from, to, 'method')) return METHOD;
      if (bytesAre(b, from, to, 'result')) return REFUSED;
      return bytesAre(b, from, to, 'params') ? PARAMS : 0;
    default:
      return 0;
  }
}

/**
 * Whether the unescaped key in b[from, to) is one a notification names a request, a subscription, a
 * resource or a task by.
 */
function isNamingKey(b: Uint8Array, from: number, to: number): boolean {
  return (
    bytesAre(b, from, to, 'requestId') ||
    bytesAre(b, from, to, '_meta') ||
    bytesAre(b, from, to, 'uri') ||
    bytesAre(b, from, to, 'taskId') ||
    isVariantAt(b, from - 1, to + 1, UPDATE_PARAMS) ||
    isVariantAt(b, from - 1, to + 1, STATUS_PARAMS)
  );
}

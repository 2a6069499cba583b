/**
 * The forwarded bytes of splice.ts from its findings: the client's bytes from the value's first byte
 * to its last, without the members left out (their spans nest or follow one another, and a string
 * inside one goes with it), and with each string to re-spell written as JSON.stringify writes it
 * (respell.ts, byte to byte). One copy into a buffer of the kept bytes' length (no spelling is
 * longer than the one it replaces), returned cut to what was written.
 */
import { Offsets } from './offsets.ts';
import { respellString } from './respell.ts';

/**
 * @param respell start and end of each string to re-spell, in order
 * @param drops start and end of each member to leave out, in any order
 */
export function assemble(
  body: Buffer,
  first: number,
  last: number,
  respell: Offsets,
  drops: number[],
): Buffer {
  const order = dropOrder(drops);
  /** Copied ranges, each followed by a string to re-spell (its start and end) or a member left out (-1, -1). */
  const pieces = PIECES.reset();
  let length = 0;
  let from = first;
  let r = 0;
  let d = 0;
  while (r < respell.length || d < order.length) {
    const dropStart = d < order.length ? (drops[order[d] as number] as number) : Infinity;
    const spellStart = r < respell.length ? respell.at(r) : Infinity;
    let start: number;
    let end: number;
    let spell: boolean;
    // A member and the key that starts it begin at the same byte: the member goes first.
    if (dropStart <= spellStart) {
      start = dropStart;
      end = drops[(order[d] as number) + 1] as number;
      spell = false;
      d++;
    } else {
      start = spellStart;
      end = respell.at(r + 1);
      spell = true;
      r += 2;
    }
    // Inside a member already left out.
    if (start < from) continue;
    // A member left out right after another (a key repeated many times) adds no piece.
    if (start > from || spell) {
      pieces.push(from, start);
      pieces.push(spell ? start : -1, spell ? end : -1);
      length += start - from + (spell ? end - start : 0);
    }
    from = end;
  }
  length += last - from;
  const out = Buffer.allocUnsafe(length);
  let to = 0;
  for (let k = 0; k < pieces.length; k += 4) {
    to = copy(body, out, to, pieces.at(k), pieces.at(k + 1));
    const spellStart = pieces.at(k + 2);
    if (spellStart !== -1) to = respellString(body, spellStart, pieces.at(k + 3), out, to);
  }
  to = copy(body, out, to, from, last);
  return to === length ? out : out.subarray(0, to);
}

/** Bytes [start, end) of `body` into `out` at `to`; the index after them. */
function copy(body: Buffer, out: Buffer, to: number, start: number, end: number): number {
  // A short stretch (between two escaped strings) costs less by hand than a call into C++.
  if (end - start <= 64) {
    for (let k = start; k < end; k++) out[to++] = body[k] as number;
    return to;
  }
  return to + body.copy(out, to, start, end);
}

/** The pieces, kept from body to body (offsets.ts). */
const PIECES = new Offsets();

/** Indexes into `drops` (of each start) by start, outer members first. */
function dropOrder(drops: number[]): number[] {
  const order: number[] = [];
  let sorted = true;
  for (let k = 0; k < drops.length; k += 2) {
    order.push(k);
    if (k > 0 && (drops[k] as number) <= (drops[k - 2] as number)) sorted = false;
  }
  // Found in order, as they mostly are (a member is left out when the next one with its key comes).
  if (!sorted)
    order.sort(
      (a, b) =>
        (drops[a] as number) - (drops[b] as number) || (drops[b + 1] as number) - (drops[a + 1] as number),
    );
  return order;
}

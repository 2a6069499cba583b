/**
 * The forwarded bytes of splice.ts from its findings: the client's bytes from the value's first byte
 * to its last, without the members left out (their spans nest or follow one another, and a string
 * inside one goes with it), and with each string to re-spell written as JSON.stringify writes it.
 * One copy: the length is summed first, then each kept stretch is copied and each string written.
 */

/**
 * @param respell start and end of each string to re-spell, in order
 * @param decoded for each, the string unescaped when known (else it is unescaped here)
 * @param drops start and end of each member to leave out, in any order
 */
export function assemble(
  body: Buffer,
  first: number,
  last: number,
  respell: number[],
  decoded: (string | undefined)[],
  drops: number[],
): Buffer {
  const order = dropOrder(drops);
  /** Copied ranges and the text after each: [from, to) then text ('' for a dropped member). */
  const ranges: number[] = [];
  const texts: string[] = [];
  let length = 0;
  let from = first;
  let r = 0;
  let d = 0;
  while (r < respell.length || d < order.length) {
    const dropStart = d < order.length ? (drops[order[d] as number] as number) : Infinity;
    const spellStart = r < respell.length ? (respell[r] as number) : Infinity;
    let start: number;
    let end: number;
    let text: string;
    // A member and the key that starts it begin at the same byte: the member goes first.
    if (dropStart <= spellStart) {
      start = dropStart;
      end = drops[(order[d] as number) + 1] as number;
      text = '';
      d++;
    } else {
      start = spellStart;
      end = respell[r + 1] as number;
      const known = decoded[r >> 1];
      r += 2;
      // Inside a member already left out.
      if (start < from) continue;
      text = JSON.stringify(known ?? (JSON.parse(body.toString('utf8', start, end)) as string));
    }
    if (start < from) continue;
    // A member left out right after another (a key repeated many times) adds no piece.
    if (start > from || text.length > 0) {
      ranges.push(from, start);
      texts.push(text);
      length += start - from + (text.length === 0 ? 0 : Buffer.byteLength(text));
    }
    from = end;
  }
  length += last - from;
  const out = Buffer.allocUnsafe(length);
  let to = 0;
  for (let k = 0; k < texts.length; k++) {
    to += body.copy(out, to, ranges[2 * k] as number, ranges[2 * k + 1] as number);
    const text = texts[k] as string;
    if (text.length > 0) to += out.write(text, to, 'utf8');
  }
  body.copy(out, to, from, last);
  return out;
}

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

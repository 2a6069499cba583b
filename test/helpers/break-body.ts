/**
 * Breaks a body anywhere, for the differential tests of the parse's fast paths: each edit
 * `[at, op, piece]` inserts `piece` (op 0), deletes one to three characters (op 1) or replaces one
 * character with `piece` (op 2), at `at` modulo the text's length plus one.
 */
export type Edit = readonly [at: number, op: number, piece: string];

export function applyEdits(body: string, edits: readonly Edit[]): string {
  let text = body;
  for (const [at, op, piece] of edits) {
    const k = at % (text.length + 1);
    if (op === 0) text = text.slice(0, k) + piece + text.slice(k);
    else if (op === 1) text = text.slice(0, k) + text.slice(k + 1 + (at % 3));
    else text = text.slice(0, k) + piece + text.slice(k + 1);
  }
  return text;
}

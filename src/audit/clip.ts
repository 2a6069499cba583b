/**
 * A client-supplied string as the audit keeps it: clipped to `max` characters, and REDACTED in its
 * place when it holds a key or token (auth/query-credential.ts): a client that put its credential
 * in an id, a method or tool name, a resource URI, a header or a tool argument the audit records.
 *
 * What is kept is well-formed UTF-16: a lone surrogate (a client's id or method may hold one, and a
 * cut may fall between the two halves of an emoji) is written as U+FFFD, as Go's encoding/json
 * reads it. JSON.stringify would write it as a `\ud800` escape, which JSON.parse, Python's json and
 * Go read, but strict readers refuse with the whole line (Rust's serde_json, under log shippers such
 * as Vector; pydantic's jiter): a client sending such an id would have had every line of its lost.
 */
import { REDACTED } from '../auth/user-agent.ts';
import { endsInsideToken, looksLikeCredential } from '../auth/query-credential.ts';

export function clip(value: string | undefined, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (value.length <= max) return looksLikeCredential(value) ? REDACTED : wellFormed(value);
  // Cut: what is kept is checked, and a cut that falls inside something shaped like a JWT (its
  // signature, which the check needs, lies past the cut) is redacted too. Nothing past the cut is
  // read: a crafted value cannot make this cost more than its kept part. A cut between the halves
  // of a surrogate pair moves before it.
  const end = max > 0 && isPairAt(value, max - 1) ? max - 1 : max;
  const kept = value.slice(0, end);
  return looksLikeCredential(kept) || endsInsideToken(kept) ? REDACTED : wellFormed(kept) + '…';
}

/** Whether `s` holds a surrogate pair starting at `i`. */
function isPairAt(s: string, i: number): boolean {
  const high = s.charCodeAt(i);
  const low = s.charCodeAt(i + 1);
  return high >= 0xd800 && high <= 0xdbff && low >= 0xdc00 && low <= 0xdfff;
}

function wellFormed(s: string): string {
  return (s as WellFormed).isWellFormed() ? s : (s as WellFormed).toWellFormed();
}

/** ES2024 `String.prototype.isWellFormed` / `toWellFormed` (Node 20+; the project's lib is es2023). */
type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };

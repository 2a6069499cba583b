/**
 * A client-supplied string as the audit keeps it: clipped to `max` characters, and REDACTED in its
 * place when it holds a key or token (auth/query-credential.ts): a client that put its credential
 * in an id, a method or tool name, a resource URI, a header or a tool argument the audit records.
 */
import { REDACTED } from '../auth/user-agent.ts';
import { endsInsideToken, looksLikeCredential } from '../auth/query-credential.ts';

export function clip(value: string | undefined, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (value.length <= max) return looksLikeCredential(value) ? REDACTED : value;
  // Cut: what is kept is checked, and a cut that falls inside something shaped like a JWT (its
  // signature, which the check needs, lies past the cut) is redacted too. Nothing past the cut is
  // read: a crafted value cannot make this cost more than its kept part.
  const kept = value.slice(0, max);
  return looksLikeCredential(kept) || endsInsideToken(kept) ? REDACTED : kept + '…';
}

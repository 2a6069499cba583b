/**
 * RFC 9110 field values: the optional whitespace (OWS) around one, spaces and tabs only.
 * String#trim would also eat U+00A0 and other Unicode spaces, hiding a non-ASCII byte; a RegExp
 * such as `[ \t]+$` retries its run of blanks from each blank in it, so a value with blanks inside
 * (`x`, 16,000 spaces, `x`: Node's parser trims only the ends) held the event loop for 0.4 s.
 */

/** The value without the spaces and tabs at its ends, found by a scan from each end. */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

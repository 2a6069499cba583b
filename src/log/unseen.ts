/**
 * Escaping for text shown to a person on a terminal: serve's pretty log (pretty.ts) and `mcpgate
 * pin`'s summary (pinning/pin-command.ts) quote names an upstream chose, and pinning's threat is a
 * compromised upstream. Escaped as `\uXXXX` (each UTF-16 unit): C0 and C1 controls and DEL (a newline
 * made one entry look like two, an escape sequence drove the terminal), line and paragraph
 * separators, and every format character (`\p{Cf}`: U+202E turned the rest of a line around, and the
 * tag characters U+E0000 to U+E007F print as nothing yet spell hidden ASCII), with what prints as
 * nothing though it is no format character: variation selectors, the Mongolian vowel separator and
 * Hangul fillers (which print as blanks).
 */
const UNSEEN =
  // eslint-disable-next-line no-control-regex
  /[\x00-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}\p{Variation_Selector}\u180e\u115f\u1160\u3164\uffa0]/gu;

function escapeUnit(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += '\\u' + c.charCodeAt(i).toString(16).padStart(4, '0');
  return out;
}

/** `text` with every character above escaped. */
export function escapeUnseen(text: string): string {
  return text.replace(UNSEEN, escapeUnit);
}

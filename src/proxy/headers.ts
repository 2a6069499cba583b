/** What an upstream response's Content-Type says it is (the header allowlist is in response-headers.ts). */
export function isEventStream(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  return value !== undefined && startsWithLower(value, 'text/event-stream');
}

export function isJson(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  if (value === undefined) return false;
  if (startsWithLower(value, 'application/json')) return true;
  return (
    startsWithLower(value, 'application/') && /^application\/[a-z0-9.+-]*\+json/.test(value.toLowerCase())
  );
}

/** `value` starts with the lower-case ASCII `prefix`, ignoring ASCII case (no copy of `value`). */
function startsWithLower(value: string, prefix: string): boolean {
  if (value.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    let c = value.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== prefix.charCodeAt(i)) return false;
  }
  return true;
}

/** What an upstream response's Content-Type says it is (the header allowlist is in response-headers.ts). */
export function isEventStream(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  return value !== undefined && value.toLowerCase().startsWith('text/event-stream');
}

export function isJson(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  if (value === undefined) return false;
  const lower = value.toLowerCase();
  return lower.startsWith('application/json') || /^application\/[a-z0-9.+-]*\+json/.test(lower);
}

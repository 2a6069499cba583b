/**
 * The check of every URL the config names (upstream.url, server.public_url, OAuth issuers and JWK
 * set URLs): an absolute http or https URL without credentials. `credentials` is the message when
 * it has some; `fragment: false` refuses a `#` too (a URL that identifies a resource, or is compared
 * as spelled, must not carry one).
 */
export function checkHttpUrl(
  value: string,
  { credentials = 'must not contain credentials', fragment = false } = {},
): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return 'must be an absolute http or https URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http or https URL';
  if (u.username || u.password) return credentials;
  if (!fragment && value.includes('#')) return 'must not contain a fragment';
  return undefined;
}

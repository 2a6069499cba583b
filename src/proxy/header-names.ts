/**
 * Header-name rules shared by the two allowlists' config checks (request-headers.ts for
 * `upstream.forward_headers` and `upstream.headers`, response-headers.ts for `upstream.pass_headers`).
 */

/** An RFC 9110 field name (a token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * RFC 9110 §7.6.1 hop-by-hop headers and their kin (`Expect`, `http2-settings`, the `proxy-`
 * ones): they describe one connection, never cross the gateway, and cannot be configured to.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
  'http2-settings',
  'expect',
]);

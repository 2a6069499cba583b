/**
 * Step 0: is this request for this gateway, from a page allowed to call it? (DNS rebinding.)
 *
 * The gateway rewrites `Host` for the upstream, which disables the upstream's own rebinding
 * protection, so the gateway checks it, before authentication:
 * - `Host`: on a loopback listener (127.0.0.0/8, ::1, localhost) only the loopback names
 *   (`localhost`, `127.0.0.1`, `[::1]`), the host of `public_url` and `server.allowed_hosts` are
 *   served, with any port (rebinding changes the name, not the port; tunnels and port mappings
 *   change the port). On any other listener (0.0.0.0 in a container) the check is off unless
 *   `server.allowed_hosts` is set, which turns it on with the same names. `*` in the list turns it
 *   off everywhere. A foreign or missing Host gets 403 ERR_HOST_DENIED. The same rule guards the
 *   listener's reserved routes (metrics, well-known documents) except the health probes.
 * - `Origin`: a request that carries one (a browser) is served only when it is in
 *   `cors.allowed_origins` or is the origin of `public_url`; else 403 ERR_ORIGIN_DENIED.
 */
import { BlockList, isIP } from 'node:net';
import type { RequestContext } from './context.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { Cors } from '../server/cors.ts';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

export interface SiteOptions {
  /** The listen address's host, as `parseListen` gives it (IPv6 without brackets). */
  readonly listenHost: string;
  readonly publicUrl: URL | undefined;
  /** `server.allowed_hosts`. */
  readonly allowedHosts: readonly string[];
  readonly cors: Cors;
}

export type SiteCheck = (ctx: RequestContext) => void;

/** 127.0.0.0/8 and ::1, whatever their spelling (`0:0:0:0:0:0:0:1`, `::ffff:127.0.0.1`). */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * Whether a listener on `host` takes only loopback connections. `host` is the address it binds
 * (listen.ts bindAddress): the configured spelling alone would miss `127.1` or `[0:0:0:0:0:0:0:1]`,
 * which bind loopback too, and leave the Host check off there.
 */
export function isLoopbackListener(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  const ip = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
  const family = isIP(ip);
  return family !== 0 && LOOPBACK.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/** A host name as the Host header carries it: lower case, IPv6 in brackets. */
export function normalizeHostName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes(':') && !lower.startsWith('[') ? `[${lower}]` : lower;
}

/** Whether the Host check is on for these settings. */
export function hostCheckEnabled(listenHost: string, allowedHosts: readonly string[]): boolean {
  if (allowedHosts.includes('*')) return false;
  return isLoopbackListener(listenHost) || allowedHosts.length > 0;
}

export type HostRule = (host: string | undefined) => boolean;

/** Whether a Host header value is served on this listener; undefined when every Host is. */
export function createHostRule(
  listenHost: string,
  allowedHosts: readonly string[],
  publicUrl: URL | undefined,
): HostRule | undefined {
  if (!hostCheckEnabled(listenHost, allowedHosts)) return undefined;
  const hosts = new Set([
    ...LOOPBACK_NAMES,
    ...(publicUrl ? [publicUrl.hostname.toLowerCase()] : []),
    ...allowedHosts.map(normalizeHostName),
  ]);
  // A client sends the same Host on every request: the last value's answer is kept (the rule is a
  // pure function of the value), so most requests compare one string instead of slicing and
  // lower-casing it.
  let lastHost: string | undefined;
  let lastAllowed = false;
  return (host) => {
    if (host !== undefined && host === lastHost) return lastAllowed;
    const name = hostName(host);
    const allowed = name !== undefined && hosts.has(name);
    lastHost = host;
    lastAllowed = allowed;
    return allowed;
  };
}

export function createSiteCheck(options: SiteOptions): SiteCheck {
  const { cors, publicUrl } = options;
  const hostAllowed = createHostRule(options.listenHost, options.allowedHosts, publicUrl);
  const publicOrigin = publicUrl?.origin;
  return function checkSite(ctx) {
    const { headers } = ctx.req;
    if (hostAllowed !== undefined && !hostAllowed(headers.host)) throw new GatewayError('ERR_HOST_DENIED');
    const origin = headers.origin;
    if (origin !== undefined && origin !== publicOrigin && !cors.allows(origin))
      throw new GatewayError('ERR_ORIGIN_DENIED');
  };
}

/** The name part of a Host header (`name[:port]`, `[v6][:port]`), lower case; undefined if malformed. */
function hostName(host: string | undefined): string | undefined {
  if (host === undefined || host === '') return undefined;
  let end: number;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    end = host.indexOf(']') + 1;
    if (end === 0) return undefined;
  } else {
    end = host.indexOf(':');
    if (end === -1) end = host.length;
  }
  if (end < host.length && !/^:\d{1,5}$/.test(host.slice(end))) return undefined;
  return host.slice(0, end).toLowerCase();
}

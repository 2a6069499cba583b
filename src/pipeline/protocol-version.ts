/**
 * The MCP-Protocol-Version header. A protocol revision is a date (`2025-11-25`), and the
 * specification has a server answer an invalid or unsupported one with 400 Bad Request; so a value
 * that is not one (a client's key pasted into the wrong header, a repeated header, a list) gets 400
 * before the upstream, and is neither forwarded nor written to the audit line. Which revisions the
 * upstream supports stays the upstream's to say.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../jsonrpc/errors.ts';

const REVISION = /^\d{4}-\d{2}-\d{2}$/;
/** The same, with the optional white space a header value may carry around it. */
const REVISION_HEADER = /^[ \t]*\d{4}-\d{2}-\d{2}[ \t]*$/;

/** Whether `value` is spelled as a protocol revision. */
export function isRevision(value: unknown): value is string {
  return typeof value === 'string' && REVISION.test(value);
}

/**
 * Throws ERR_INVALID_REQUEST when the header is present and is not one protocol revision;
 * `revision` is headerRevision's answer for the same headers (createContext keeps it).
 */
export function checkProtocolVersion(headers: IncomingHttpHeaders, revision: string | undefined): void {
  if (revision !== undefined || headers['mcp-protocol-version'] === undefined) return;
  throw new GatewayError('ERR_INVALID_REQUEST', {
    message: 'invalid request: MCP-Protocol-Version must be one protocol revision (YYYY-MM-DD)',
  });
}

/** The header's revision, for the audit line: undefined when absent or not one. */
export function headerRevision(headers: IncomingHttpHeaders): string | undefined {
  const value = headers['mcp-protocol-version'];
  return typeof value === 'string' && REVISION_HEADER.test(value) ? value.trim() : undefined;
}

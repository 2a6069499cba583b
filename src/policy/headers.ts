/**
 * MCP 2026-07-28 mirrors body fields into request headers so intermediaries can route without
 * parsing: `Mcp-Method` (the method), `Mcp-Name` (`params.name` of tools/call and prompts/get,
 * `params.uri` of resources/read, `params.taskId` of the tasks extension's tasks/get, tasks/update,
 * tasks/cancel; non-ASCII values as `=?base64?...?=`) and `MCP-Protocol-Version` (the body's
 * `_meta["io.modelcontextprotocol/protocolVersion"]`).
 *
 * The gateway always decides on the body. But a component behind it that trusts a header would act
 * on something the gateway never judged, so any of these headers that is present must agree with the
 * body exactly, or the request is refused with 400 and JSON-RPC error -32020 (HeaderMismatch), as the
 * spec requires of servers. Also refused: a duplicated header, a malformed value, `Mcp-Method` or
 * `Mcp-Name` on a batch (they can describe only one message), `Mcp-Name` on a method that has no
 * name. A header that is absent is left to the upstream (which requires them on modern requests).
 * `Mcp-Param-*` headers mirror tool arguments named by the tool's schema (`x-mcp-header`), which the
 * gateway does not hold, so the upstream checks which argument each mirrors. The gateway refuses what
 * no conforming client sends: one on anything but a single `tools/call`, a repeated one, a malformed
 * value, or a value that no string, number or boolean among the members of `params.arguments` has
 * (a header a component behind the gateway routes on then always names something the body carries).
 * "Has" is read as every reader reads it: a number only in a spelling that denotes exactly its value
 * and that the 2.x SDK server compares equal (plain decimal, or the double's own spelling, as clients
 * write it), and Base64 only in its canonical form.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { JsonRpcId, JsonRpcMessage } from '../jsonrpc/message.ts';
import { refusalId } from '../jsonrpc/message.ts';
import { isRawNumber, rawNumberText } from '../jsonrpc/lossless.ts';
import { trimOws } from '../proxy/field-value.ts';

/** `req.headers`, or better `req.headersDistinct` (which shows duplicated headers as arrays). */
export type HeaderSource =
  IncomingHttpHeaders | Readonly<Record<string, string | readonly string[] | undefined>>;

/** The body field `Mcp-Name` mirrors, per method. */
export const MCP_NAME_SOURCE: ReadonlyMap<string, 'name' | 'uri' | 'taskId'> = new Map([
  ['tools/call', 'name'],
  ['prompts/get', 'name'],
  ['resources/read', 'uri'],
  ['tasks/get', 'taskId'],
  ['tasks/update', 'taskId'],
  ['tasks/cancel', 'taskId'],
]);

const PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';
const DUPLICATE = Symbol('duplicate');
const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const PLAIN = /^[\t\x20-\x7e]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The request's `Mcp-*` headers (any case) as `req.headersDistinct` shows them: lower-case names,
 * every value of a repeated header in order. Only these are read by checkMcpHeaders, so the other
 * headers are not copied, nor `Mcp-Session-Id`, which it never reads (the session step takes it
 * from `req.headers`) and which nearly every request of a session carries.
 */
export function mcpHeaders(rawHeaders: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length < 4 || !isMcpPrefix(name) || isNamed(name, SESSION_ID)) continue;
    const lower = lowerMcpName(name);
    const values = out[lower];
    if (values === undefined) out[lower] = [rawHeaders[i + 1] as string];
    else values.push(rawHeaders[i + 1] as string);
  }
  return out;
}

const SESSION_ID = 'mcp-session-id';
const PROTOCOL_VERSION = 'mcp-protocol-version';
const METHOD = 'mcp-method';
const NAME = 'mcp-name';

/**
 * The lower-case name of an `Mcp-*` header. The three checkMcpHeaders reads by name, which most
 * requests carry (MCP-Protocol-Version on every one, in mixed case as the SDKs send it), are
 * compared in place and given as constants: `toLowerCase` made a string of each per request. The
 * key is always what `toLowerCase` gives: a name equal to one of them but for ASCII case lower-cases
 * to it, and no other character lower-cases to a single letter of theirs (the Kelvin sign's k is in
 * none of them); any other name is lower-cased as before.
 */
function lowerMcpName(name: string): string {
  if (isNamed(name, PROTOCOL_VERSION)) return PROTOCOL_VERSION;
  if (isNamed(name, METHOD)) return METHOD;
  if (isNamed(name, NAME)) return NAME;
  return name.toLowerCase();
}

/** A name that starts with `mcp-` is `lower` (lower-case ASCII), ignoring ASCII case (compared in place). */
function isNamed(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 4; i < lower.length; i++) {
    const c = name.charCodeAt(i);
    const l = lower.charCodeAt(i);
    // Only letters fold: '-' stays '-'.
    if (c !== l && !(l >= 0x61 && l <= 0x7a && c === l - 0x20)) return false;
  }
  return true;
}

/** The name starts with `mcp-`, ignoring ASCII case. */
function isMcpPrefix(name: string): boolean {
  return (
    (name.charCodeAt(0) | 0x20) === 0x6d &&
    (name.charCodeAt(1) | 0x20) === 0x63 &&
    (name.charCodeAt(2) | 0x20) === 0x70 &&
    name.charCodeAt(3) === 0x2d
  );
}

export function checkMcpHeaders(
  headers: HeaderSource,
  message: JsonRpcMessage | readonly JsonRpcMessage[],
): GatewayError | undefined {
  const method = single(headers['mcp-method']);
  const name = single(headers['mcp-name']);
  const version = single(headers['mcp-protocol-version']);
  const params = paramHeaders(headers);
  if (params !== undefined) {
    const failure = checkParams(params, message);
    if (failure !== undefined) return failure;
  }
  if (method === undefined && name === undefined && version === undefined) return undefined;
  if (method === DUPLICATE || name === DUPLICATE || version === DUPLICATE) {
    return mismatch(null, 'a request metadata header is repeated');
  }
  if (isBatch(message)) {
    if (method !== undefined || name !== undefined) {
      return mismatch(null, 'Mcp-Method and Mcp-Name cannot describe a batch');
    }
    for (const m of message) {
      const failure = checkVersion(version, m);
      if (failure !== undefined) return failure;
    }
    return undefined;
  }
  const m = message as { id?: JsonRpcId; method?: string; params?: Record<string, unknown> };
  const id = refusalId(message);
  const versionFailure = checkVersion(version, message);
  if (versionFailure !== undefined) return versionFailure;
  if (method !== undefined && (m.method === undefined || trimOws(method) !== m.method)) {
    return mismatch(id, "the Mcp-Method header does not match the body's method");
  }
  if (name !== undefined) {
    const field = m.method === undefined ? undefined : MCP_NAME_SOURCE.get(m.method);
    if (field === undefined) return mismatch(id, 'the Mcp-Name header is not defined for this method');
    const decoded = decodeValue(trimOws(name));
    if (decoded === undefined) return mismatch(id, 'the Mcp-Name header is malformed');
    if (m.params?.[field] !== decoded)
      return mismatch(id, `the Mcp-Name header does not match params.${field}`);
  }
  return undefined;
}

const PARAM_PREFIX = 'mcp-param-';

/**
 * A request without a body (GET, DELETE) has nothing `Mcp-Method`, `Mcp-Name` or `Mcp-Param-*` could
 * mirror (the spec defines them on POSTs only): a component behind the gateway routing on one would
 * act on a call the gateway never judged, so such a request is refused (400, -32020).
 */
export function checkBodylessHeaders(headers: IncomingHttpHeaders): GatewayError | undefined {
  if (headers[METHOD] !== undefined || headers[NAME] !== undefined || hasParamHeaders(headers)) {
    return mismatch(
      null,
      'Mcp-Method, Mcp-Name and Mcp-Param headers describe a POST body, and this request has none',
    );
  }
  return undefined;
}

/** Whether the request has an `Mcp-Param-*` header (checked against every number in the arguments). */
export function hasParamHeaders(headers: HeaderSource): boolean {
  for (const name in headers) if (name.startsWith(PARAM_PREFIX)) return true;
  return false;
}

function paramHeaders(headers: HeaderSource): [string, string | typeof DUPLICATE | undefined][] | undefined {
  let out: [string, string | typeof DUPLICATE | undefined][] | undefined;
  for (const name in headers) {
    if (name.startsWith(PARAM_PREFIX)) (out ??= []).push([name, single(headers[name])]);
  }
  return out;
}

function checkParams(
  params: readonly [string, string | typeof DUPLICATE | undefined][],
  message: JsonRpcMessage | readonly JsonRpcMessage[],
): GatewayError | undefined {
  if (isBatch(message)) return mismatch(null, 'Mcp-Param headers cannot describe a batch');
  const m = message as { id?: JsonRpcId; method?: string; params?: Record<string, unknown> };
  const id = refusalId(message);
  if (m.method !== 'tools/call') return mismatch(id, 'Mcp-Param headers are defined only for tools/call');
  const values = argumentValues(m.params?.arguments);
  for (const [name, raw] of params) {
    if (raw === DUPLICATE) return mismatch(id, `the ${name} header is repeated`);
    const decoded = raw === undefined ? undefined : decodeValue(trimOws(raw));
    if (decoded === undefined) return mismatch(id, `the ${name} header is malformed`);
    if (!values.strings.has(decoded) && !mirrorsNumber(decoded, values.numbers))
      return mismatch(id, `the ${name} header matches no argument`);
  }
  return undefined;
}

interface ArgumentValues {
  /** Every string, and every boolean as `true` / `false`. */
  readonly strings: Set<string>;
  /** Every number as exactKey of its spelling, with the spelling its double prints. */
  readonly numbers: Map<string, string[]>;
}

/**
 * The strings, numbers and booleans reachable through object members of the arguments (what
 * `x-mcp-header` may annotate).
 */
function argumentValues(args: unknown): ArgumentValues {
  const strings = new Set<string>();
  const numbers = new Map<string, string[]>();
  const addNumber = (text: string) => {
    const key = exactKey(text);
    if (key === undefined) return;
    const printed = numbers.get(key);
    if (printed === undefined) numbers.set(key, [String(Number(text))]);
    else printed.push(String(Number(text)));
  };
  // Only members: `x-mcp-header` annotates a property, never the arguments themselves (a string
  // `arguments`, which no tool takes, mirrors nothing).
  if (typeof args !== 'object' || args === null || Array.isArray(args) || isRawNumber(args))
    return { strings, numbers };
  const stack: unknown[] = [args];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') strings.add(v);
    else if (typeof v === 'boolean') strings.add(String(v));
    // A plain number is one whose double prints its spelling (lossless.ts).
    else if (typeof v === 'number') addNumber(String(v));
    else if (isRawNumber(v)) addNumber(rawNumberText(v));
    else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      for (const key in v) stack.push((v as Record<string, unknown>)[key]);
    }
  }
  return { strings, numbers };
}

/** A plain decimal as JSON spells one: no leading zero (`010` is 8 to a reader of C or octal literals). */
const DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d+)?$/;

/**
 * Whether a header value mirrors a number of the arguments. It must denote exactly that number:
 * `1` mirrors `1.0` (the same value to every reader), but not `1.00000000000000001`, which a
 * double reads as 1 and Go's `json.Number`, Java's BigDecimal or Python's Decimal do not. And it
 * must be a spelling the 2.x SDK server compares equal: a plain decimal (compared as a number), or
 * the spelling the number's double prints (compared as a string: `1e-7`, what clients write), not
 * `1e0` or `1E2`, which it reads as another string than `1` or `100` while a router may read them
 * as the number. Nor `010`: JSON allows no leading zero, and a reader of C literals (`strtol` with
 * base 0, Python 2's `int(x, 0)`) reads it as 8.
 */
function mirrorsNumber(value: string, numbers: ReadonlyMap<string, readonly string[]>): boolean {
  if (numbers.size === 0) return false;
  const key = exactKey(value);
  if (key === undefined) return false;
  const printed = numbers.get(key);
  return printed !== undefined && (DECIMAL.test(value) || printed.includes(value));
}

/**
 * A JSON number's exact value as a string: equal for equal values (`1`, `1.0`, `10e-1`, `-0`
 * and `0` too), whatever their spelling; undefined for what is not a JSON number, or one whose
 * exponent is so large that no header (at most a few KiB) can spell its value in decimal.
 */
export function exactKey(text: string): string | undefined {
  let i = 0;
  const n = text.length;
  const negative = text.charCodeAt(0) === 0x2d;
  if (negative) i++;
  const intStart = i;
  while (i < n && isDigit(text.charCodeAt(i))) i++;
  const intEnd = i;
  if (intEnd === intStart) return undefined;
  let fracStart = i;
  let fracEnd = i;
  if (i < n && text.charCodeAt(i) === 0x2e) {
    fracStart = ++i;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    fracEnd = i;
    if (fracEnd === fracStart) return undefined;
  }
  let exponent = 0;
  if (i < n && (text.charCodeAt(i) | 0x20) === 0x65) {
    i++;
    let sign = 1;
    if (i < n && (text.charCodeAt(i) === 0x2b || text.charCodeAt(i) === 0x2d)) {
      if (text.charCodeAt(i) === 0x2d) sign = -1;
      i++;
    }
    const expStart = i;
    while (i < n && text.charCodeAt(i) === 0x30) i++;
    const digitsStart = i;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    if (i === expStart) return undefined;
    if (i - digitsStart > 6) return undefined;
    exponent = sign * Number(text.slice(digitsStart, i) || '0');
  }
  if (i !== n) return undefined;
  let digits = text.slice(intStart, intEnd) + text.slice(fracStart, fracEnd);
  exponent -= fracEnd - fracStart;
  let lead = 0;
  while (lead < digits.length && digits.charCodeAt(lead) === 0x30) lead++;
  let trail = digits.length;
  while (trail > lead && digits.charCodeAt(trail - 1) === 0x30) trail--;
  if (trail === lead) return '0';
  exponent += digits.length - trail;
  digits = digits.slice(lead, trail);
  return `${negative ? '-' : ''}${digits}e${exponent}`;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function checkVersion(version: string | undefined, message: JsonRpcMessage): GatewayError | undefined {
  if (version === undefined) return undefined;
  const params = (message as { params?: Record<string, unknown> }).params;
  const meta = params?._meta;
  if (typeof meta !== 'object' || meta === null) return undefined;
  const claimed = (meta as Record<string, unknown>)[PROTOCOL_VERSION_META];
  if (claimed === undefined || claimed === trimOws(version)) return undefined;
  return mismatch(
    refusalId(message),
    "the MCP-Protocol-Version header does not match the body's protocol version",
  );
}

/** Decodes a header value that may use the Base64 sentinel; undefined when malformed. */
export function decodeValue(value: string): string | undefined {
  if (!(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX))) {
    return PLAIN.test(value) ? value : undefined;
  }
  // `=?base64?=`: prefix and suffix overlap. The SDKs decode it (an empty payload: ""), a reader
  // that wants them apart takes it as plain text; both cannot be right, so neither is.
  if (value.length < SENTINEL_PREFIX.length + SENTINEL_SUFFIX.length) return undefined;
  const b64 = value.slice(SENTINEL_PREFIX.length, value.length - SENTINEL_SUFFIX.length);
  if (!BASE64.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  // Canonical only (RFC 4648 3.5): the bits after the last byte are zero. atob, and so the SDKs,
  // ignore them (`ZXV=` is `eu`); Go's StdEncoding.Strict() and Rust's base64 refuse the value, so
  // a router written with them would not read the name the upstream reads.
  if (bytes.toString('base64') !== b64) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function single(value: string | readonly string[] | undefined): string | typeof DUPLICATE | undefined {
  if (value === undefined || typeof value === 'string') return value;
  if (value.length === 0) return undefined;
  return value.length === 1 ? value[0] : DUPLICATE;
}

function isBatch(message: JsonRpcMessage | readonly JsonRpcMessage[]): message is readonly JsonRpcMessage[] {
  return Array.isArray(message);
}

function mismatch(id: JsonRpcId | null, why: string): GatewayError {
  return new GatewayError('ERR_HEADER_MISMATCH', { message: `Header mismatch: ${why}`, rpcId: id });
}

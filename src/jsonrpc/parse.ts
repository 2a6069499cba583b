/**
 * Strict parsing of a client's POST body. What the gateway judges is exactly what the upstream
 * receives: the body is decoded as strict UTF-8, parsed once and validated, and the bytes forwarded
 * are the client's own when every JSON parser reads them as the value judged; otherwise they are
 * the client's own with the members a repeated key replaced left out and the strings holding a `\u`
 * escape spelled as JSON.stringify spells them (splice.ts; but for long strings in arguments nothing
 * reads, which keep the client's spelling: skeleton.ts), or, should that pass not account for
 * every value, the value judged re-serialised. That removes every parser-difference trick at once:
 * duplicate keys (the upstream sees only the value judged), `\u` escapes (forwarded spelled
 * plainly), BOMs, trailing bytes, invalid UTF-8, non-object params and ids that would not survive a
 * round trip. Numbers keep their spelling (lossless.ts), so the forwarded bytes mean what the client
 * sent.
 *
 * Before anything is built, a linear pre-scan (scan.ts) refuses bodies nested deeper than
 * MAX_DEPTH or holding more than MAX_VALUES values, at the byte that crosses the limit, and counts
 * the values. One walk over the parsed value (tree.ts) counts them again: equal counts mean no key
 * was repeated, so the client's bytes (without surrounding whitespace) are forwarded as they are,
 * unless they hold a `\u` escape. The cost of any body is one pass over its bytes, JSON.parse, and
 * a walk of a bounded number of values; a number a double cannot spell back adds a pass over the
 * bytes up to the last such number (place-numbers.ts); only a body with a repeated key or a `\u`
 * escape also pays for a pass over its bytes and a copy of them (splice.ts), and, if it also holds
 * such a number and a repeated key, for the placing pass to the end of the body
 * (bench/parse-fuzz.ts reports the slowest shapes). What JSON.parse reads leaves out long strings
 * and, when nothing reads them, large parts of params (skeleton.ts): building a large string or tree costs
 * a page fault per 4 KiB of it, more than parsing it.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { GatewayError } from './errors.ts';
import type { JsonRpcId, JsonRpcMessage } from './message.ts';
import { scanJson } from './scan.ts';
import type { ScanLimits } from './scan.ts';
import { isRawNumber, parseKeepingNumbers } from './lossless.ts';
import { placeNumbers } from './place-numbers.ts';
import { spliceBody } from './splice.ts';
import { numbersRead } from './read-depth.ts';
import { walkTree } from './tree.ts';
import { keysAsSpelled } from './key-check.ts';
import { BODY_LIMITS } from './limits.ts';
import {
  cutOf,
  restoreStrings,
  skeletonOf,
  unicodeSkeleton,
  validStrings,
  valuesLeftOut,
  walksUnread,
} from './skeleton.ts';
import type { Cut } from './skeleton.ts';

export { BODY_LIMITS, MAX_DEPTH, MAX_VALUES } from './limits.ts';

const PROTO = Buffer.from('__proto__');
const PROTOTYPE = Buffer.from('prototype');
/**
 * Long strings covering this many bytes or more are left out of JSON.parse (skeleton.ts). Below it,
 * building them costs less than the skeleton's copy and walk (a tools/call with a 1 KiB string
 * argument parses ~20% slower through the skeleton, one with 20 KB ~20% faster), and no string
 * is large enough for the page faults of V8's large-object space (~128 KiB).
 */
export const SKELETON_FROM = 16 * 1024;

export interface ParsedBody {
  readonly messages: readonly JsonRpcMessage[];
  readonly batch: boolean;
  /**
   * The bytes to forward: the client's own (a view of the body, without surrounding whitespace)
   * when they mean `messages` to any parser, else a copy of them that does (splice.ts), or, should
   * the splice give up, the serialisation of `messages`.
   */
  readonly bytes: Buffer;
}

/**
 * The id of the first message in a body when it is a request, for error responses; never throws.
 * A response's id (a client's answer to the upstream's sampling, elicitation or roots request) is
 * the upstream's, not one of the client's own requests: an error carrying it reads to the client as
 * the answer to its own request of that number (SDK peers both number from 0), so it gets null.
 */
export function peekId(value: unknown): JsonRpcId | null {
  const first = Array.isArray(value) ? value[0] : value;
  if (typeof first === 'object' && first !== null && 'id' in first && 'method' in first) {
    const id = (first as { id: unknown }).id;
    if (typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id))) return id;
  }
  return null;
}

/**
 * @param argumentsRead whether messages' `params.arguments` are read (the audit of arguments,
 *   `Mcp-Param-*` checks): true puts every kept number into the parsed value and every string;
 *   false only those a message's other readers read (read-depth.ts): the kept numbers deeper than
 *   a message's members' members stay doubles, and the long strings of `params.arguments` stay
 *   placeholders (skeleton.ts)
 * @param skeletonFrom leave long strings out of JSON.parse when they cover this many bytes together
 *   (tests pass 0 to take that path whenever there is one, or Infinity never to)
 */
export function parseBody(
  body: Buffer,
  knownMethods: ReadonlyMap<string, string>,
  limits: ScanLimits = BODY_LIMITS,
  argumentsRead = true,
  skeletonFrom = SKELETON_FROM,
): ParsedBody {
  // A body whose arguments may be walked (cutOf) has the pre-scan note its short valid strings, so
  // the walk need not read them again.
  const scan = scanJson(body, limits, !argumentsRead && walksUnread(body, skeletonFrom));
  if (!scan.ok) {
    const message =
      scan.limit === 'depth'
        ? `parse error: body is nested deeper than ${limits.maxDepth}`
        : `parse error: body holds more than ${limits.maxValues} values`;
    throw new GatewayError('ERR_PARSE', { message });
  }
  // Strict UTF-8 (no replacement characters): validated, then decoded; a BOM stays in the text.
  if (!isUtf8(body)) throw new GatewayError('ERR_PARSE', { message: 'parse error: body is not valid UTF-8' });
  // JSON.parse makes `"__proto__"` an ordinary own key, but an upstream that copies objects with
  // assignment (Object.assign, a naive deep merge) turns it into a prototype, and then reads
  // properties the gateway never saw. A naive deep merge does the same with a `"constructor"` object
  // holding a `"prototype"`: it follows the inherited `constructor` to a class (`Object`) and merges
  // into what every instance inherits, for every later request of every key (fastify's parser refuses
  // both). A key can only be `__proto__` or `prototype` if the bytes spell it or it is spelled with an
  // escape (scan.ts keyEscape), so the walk looks for them only then (a part left out that holds a key
  // `prototype` is kept for it: object-keys.ts). A body shorter than `skeletonFrom` has nothing left
  // out (cutOf), so only the walk needs the answer: it is looked for in the body's text, V8's own
  // string search, since Buffer#indexOf's call into C++ costs a small body more than the search
  // itself (UTF-8 puts ASCII bytes only where the text has them).
  const small = body.length < skeletonFrom;
  const protoSpelled = !small && body.indexOf(PROTO) !== -1;
  let findProto = scan.keyEscape || protoSpelled || (!small && body.indexOf(PROTOTYPE) !== -1);
  // Long strings, and the parts of params nothing reads (its arguments among them), are left out of
  // what JSON.parse reads and given back where a reader reads them (skeleton.ts). `__proto__`
  // spelled plainly keeps them all (the walk must see it); escapes do not: unread-spans.ts reads
  // each part as the walk over the parsed value would (it decodes a key spelled with an escape on
  // its own, and keeps the part when one is `__proto__`), and their strings and keys are forwarded
  // as the client spelled them, as the long strings nothing reads are (splice.ts). A `\u` escape keeps
  // everything unless no string JSON.parse builds can be taken for a placeholder (skeleton.ts:
  // unicodeSkeleton).
  const withUnread = !argumentsRead && !protoSpelled && walksUnread(body, skeletonFrom);
  let cut = small ? undefined : cutOf(body, scan.long, withUnread, skeletonFrom, scan.plain);
  let skeleton =
    cut === undefined ? body : scan.unicodeEscape ? unicodeSkeleton(body, cut) : skeletonOf(body, cut.spans);
  if (skeleton === undefined) {
    cut = undefined;
    skeleton = body;
  }
  const text = skeleton.toString('utf8');
  if (small && !findProto) findProto = text.includes('__proto__') || text.includes('prototype');
  if (text.charCodeAt(0) === 0xfeff)
    throw new GatewayError('ERR_PARSE', { message: 'parse error: byte order mark' });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new GatewayError('ERR_PARSE', { message: 'parse error: body is not a JSON value', cause });
  }
  if (cut !== undefined) {
    if (!validStrings(body, cut.strings, scan.checked))
      throw new GatewayError('ERR_PARSE', { message: 'parse error: body is not a JSON value' });
    value = restoreStrings(value, body, cut.spans, argumentsRead);
  }
  // V8's JSON.parse (Node 24 and 26; not Node 22) can read a key spelled with an escaped quote as a
  // key it met before that ends in a backslash: after `{"\\":1}`, the key of `{"\"":2}` comes out
  // as `\`, so the gateway would judge a key the upstream does not read. No MCP key holds a quote, so
  // such a body is refused.
  // (Refused before the misread check below, so its id is read as for a misread: peekSpelledId.)
  if (scan.keyQuote)
    throw invalid(peekSpelledId(value), 'an object key holding an escaped quote (\\") is not accepted');
  const shape = walkTree(value, findProto, scan.keyEscape);
  // The same JSON.parse can read a key spelled with any escape as an earlier key that holds a
  // backslash where the escape begins (`n\u0061me` as `n\u0`): the gateway would judge a key the
  // upstream does not read, and the splice spells the real one (key-check.ts). Such a body is
  // refused; a key that does hold a backslash, read as spelled, passes.
  // (A key holding a backslash inside a part left out is checked for alike: cut.backslash.)
  if ((shape.backslashKey || cut?.backslash === true) && !keysAsSpelled(skeleton, value))
    throw invalid(peekSpelledId(value), 'an object key was not read as it is spelled');
  // Every value the scan counted is in the parsed value (or left out with the arguments) exactly
  // when no key was repeated outside the arguments left out; inside them, their walk tells.
  const repeatedKeys = cut?.repeats === true || shape.values + (cut?.missing ?? 0) !== scan.values;
  // Numbers a double cannot spell back are kept as written, put where the bytes have them (only a
  // valid body gets here, so marking a lexeme the scan took for a number never makes one valid):
  // all of them, or those the gateway reads.
  const kept =
    argumentsRead || scan.lossy.length === 0
      ? scan.lossy
      : numbersRead(scan.lossy, scan.depths, Array.isArray(value));
  if (kept.length > 0) value = keepNumbers(body, bodyText(body, text, cut), value, kept, repeatedKeys);
  if (shape.protoKey)
    throw invalid(
      peekId(value),
      'a "__proto__" key, or a "constructor" holding a "prototype", is not allowed',
    );
  if (shape.caseTwins) throw invalid(peekId(value), 'an object has keys that differ only by case');
  const batch = Array.isArray(value);
  // Only kept numbers are RawNumbers: with none, no params can be one.
  const rawNumbers = kept.length > 0;
  let messages: JsonRpcMessage[];
  if (batch) {
    if ((value as unknown[]).length === 0) throw invalid(null, 'empty batch');
    messages = (value as unknown[]).map((item) => validateMessage(item, knownMethods, rawNumbers));
  } else messages = [validateMessage(value, knownMethods, rawNumbers)];
  // No key repeated, nothing escaped as \u and no key spelled with an escape: any parser reads the
  // client's bytes as the value judged, so they are forwarded as they are.
  if (!repeatedKeys && !scan.unicodeEscape && !scan.keyEscape)
    return { messages, batch, bytes: trimmed(body) };
  // Otherwise the client's bytes without the members a repeated key replaced, and with the strings
  // that hold a \u escape and the keys spelled with an escape written as JSON.stringify writes them
  // (splice.ts): a key reaches the upstream spelled with an escape only inside a part no rule reads
  // (unread-spans.ts), so V8's misread of such keys (key-check.ts) cannot hide a member the gateway
  // judged from an upstream in Node, whatever bodies that process parsed before.
  const spliced = spliceBody(
    body,
    value,
    scan.lossy,
    repeatedKeys,
    shape.values + (cut === undefined ? 0 : valuesLeftOut(value, cut)),
    bodyText(body, text, cut),
    cut?.spans,
    cut?.repeats === false ? cut.counts : undefined,
  );
  if (spliced !== undefined) return { messages, batch, bytes: spliced };
  // Should the splice not account for every value, the judged value is serialised, with every
  // number kept and every string built (the depth limit keeps this recursion far from the stack's
  // end).
  const whole =
    kept.length === scan.lossy.length && cut === undefined ? value : reparse(body, scan.lossy, value);
  return { messages, batch, bytes: Buffer.from(JSON.stringify(whole)) };
}

/**
 * The parsed value with the numbers at `lossy` kept as their lexemes, put in place in one pass over
 * the bytes (place-numbers.ts). When a key may repeat, that pass reads every key and undoes what it
 * placed under a member a later one with the same key replaced (the value holds only the last).
 * Should the pass find a slot that does not match the bytes, the body is parsed again with those
 * numbers marked instead (lossless.ts): slower, never wrong.
 */
function keepNumbers(
  body: Buffer,
  asciiText: string | undefined,
  value: unknown,
  lossy: ArrayLike<number>,
  repeatedKeys: boolean,
): unknown {
  const placed = placeNumbers(body, value, lossy, asciiText, repeatedKeys);
  return placed ?? reparse(body, lossy, value);
}

/**
 * The body parsed again with the numbers at `lossy` kept (lossless.ts), refused should that parse
 * misread a key the checked one read as spelled. Neither caller's pass gives up on bytes that the
 * value they were given reads as spelled (the property tests hold it), so no body is known to get here.
 */
function reparse(body: Buffer, lossy: ArrayLike<number>, value: unknown): unknown {
  const again = parseKeepingNumbers(body, lossy);
  if (again === undefined) throw invalid(peekSpelledId(value), 'an object key was not read as it is spelled');
  return again;
}

/**
 * peekId, or null when a key beside the id holds a backslash: for a body refused for a misread key,
 * or read by a lone JSON.parse (pipeline/peek-id.ts). V8's JSON.parse, primed by an earlier body,
 * reads a key spelled with an escape as an earlier key holding a backslash (key-check.ts), and the
 * key it hides may be the id's own repeat: `"id":8,"i\u0064":99` is read as `"id":8,"i\\":99`
 * after a body with a key `i\`, and 8 is not the id the client's message means (99, the last of
 * repeated members). Null is JSON-RPC's answer for an id that cannot be read.
 */
export function peekSpelledId(value: unknown): JsonRpcId | null {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return ownKeyHoldsBackslash(first) ? null : peekId(value);
}

/**
 * Whether `value` is an object with an own key holding a backslash: one level only (key-check.ts
 * holdsBackslashKey walks every depth, for the parse it checks).
 */
export function ownKeyHoldsBackslash(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  for (const key of Object.keys(value)) if (key.includes('\\')) return true;
  return false;
}

/** The text, when its offsets are the body's bytes (the passes that read keys take them from it). */
function bodyText(body: Buffer, text: string, cut: Cut | undefined): string | undefined {
  return cut === undefined && isAscii(body) ? text : undefined;
}

/** The body without the JSON whitespace around its value (a view, no copy). */
function trimmed(body: Buffer): Buffer {
  let start = 0;
  let end = body.length;
  while (start < end && isSpace(body[start] as number)) start++;
  while (end > start && isSpace(body[end - 1] as number)) end--;
  return start === 0 && end === body.length ? body : body.subarray(start, end);
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

const MESSAGE_MEMBERS: ReadonlySet<string> = new Set([
  'jsonrpc',
  'id',
  'method',
  'params',
  'result',
  'error',
]);

function invalid(id: JsonRpcId | null, why: string): GatewayError {
  return new GatewayError('ERR_INVALID_REQUEST', { message: `invalid request: ${why}`, rpcId: id });
}

function validateMessage(
  item: unknown,
  knownMethods: ReadonlyMap<string, string>,
  rawNumbers: boolean,
): JsonRpcMessage {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) throw invalid(null, 'not an object');
  const m = item as Record<string, unknown>;
  const hasId = Object.hasOwn(m, 'id');
  const id = m.id;
  if (hasId && !(typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id)))) {
    // A number id spelled other than a double prints it (`1.0`, `1e0`, `-0`) is refused too: the
    // client could not tell its response's id from another.
    throw invalid(null, 'id must be a string or a safe integer');
  }
  // A refusal answers a request by its id; a response's id names the upstream's request (peekId).
  const rid = hasId && Object.hasOwn(m, 'method') ? (id as JsonRpcId) : null;
  if (m.jsonrpc !== '2.0') throw invalid(rid, 'jsonrpc must be "2.0"');
  // The members JSON-RPC 2.0 defines, and no other: an upstream that matches keys by case (Go's
  // encoding/json) reads `"Method"` or `"Params"` beside a `result` as a request the judge never
  // saw (policy/case-variants.ts guards the members inside params).
  for (const key in m)
    if (!MESSAGE_MEMBERS.has(key)) throw invalid(rid, `unknown member ${JSON.stringify(key)}`);
  if (Object.hasOwn(m, 'method')) {
    if (typeof m.method !== 'string' || m.method.length === 0) throw invalid(rid, 'method must be a string');
    // A method that differs from a known one only by case would be judged unknown here but could
    // be matched case-insensitively by some upstream: refuse it outright. Folding through upper case
    // as well catches the Unicode characters such matchers equate with ASCII letters (`toolſ/call`:
    // U+017F upper-cases to S; `tas\u212As/get`: the Kelvin sign lower-cases to k).
    if (knownMethods.get(m.method) !== m.method) {
      const canonical =
        knownMethods.get(m.method.toLowerCase()) ?? knownMethods.get(m.method.toUpperCase().toLowerCase());
      if (canonical !== undefined && canonical !== m.method)
        throw invalid(rid, 'method name has the wrong case');
    }
    if (
      Object.hasOwn(m, 'params') &&
      (typeof m.params !== 'object' ||
        m.params === null ||
        Array.isArray(m.params) ||
        (rawNumbers && isRawNumber(m.params)))
    ) {
      throw invalid(rid, 'params must be an object');
    }
    if (Object.hasOwn(m, 'result') || Object.hasOwn(m, 'error'))
      throw invalid(rid, 'a request has no result or error');
    return m as unknown as JsonRpcMessage;
  }
  if (!hasId) throw invalid(null, 'a response needs an id');
  if (Object.hasOwn(m, 'result') === Object.hasOwn(m, 'error'))
    throw invalid(rid, 'a response has result or error');
  return m as unknown as JsonRpcMessage;
}

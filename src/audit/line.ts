/**
 * The audit line written in place: the bytes of `JSON.stringify(buildAuditRecord(...))` and a
 * newline (with U+0085, U+2028 and U+2029 escaped: json-bytes.ts writeJson), without the record
 * object, without JSON.stringify walking it property by property, and without a string of the line
 * (record.ts defines the record; this writes it). The field set is closed, so each field is written
 * in the record's order after its key, quoted and encoded at start-up; a field with no value is left
 * out, as JSON.stringify leaves out an undefined property. Values are written by json-bytes.ts, whose
 * escaping is JSON.stringify's; the rare parts (a batch's calls, tool arguments, pin violations) are
 * JSON.stringify's output itself. test/unit/audit/line.test.ts compares the two on generated
 * contexts, hostile strings included.
 */
import type { CallRecord, RequestContext } from '../pipeline/context.ts';
import type { JsonRpcId } from '../jsonrpc/message.ts';
import type { LineSink, LineSource } from './line-buffer.ts';
import { requestDecision, requestReason } from './outcome.ts';
import { isoTime } from './iso-time.ts';
import { loggedUserAgent } from '../auth/user-agent.ts';
import { clip } from './clip.ts';
import {
  batchCalls,
  MAX_NAME,
  MAX_URI,
  messageCall,
  NO_ARGUMENTS,
  pinViolations,
  toolArguments,
  withheldUris,
} from './record.ts';
import type { AuditRecordOptions } from './record.ts';
import { asciiBytes, writeJson, writeMillis, writeNumber, writeRaw, writeString } from './json-bytes.ts';

const K = {
  time: asciiBytes('{"time":'),
  request_id: asciiBytes(',"request_id":'),
  key: asciiBytes(',"key":'),
  key_id: asciiBytes(',"key_id":'),
  sub: asciiBytes(',"sub":'),
  client_id: asciiBytes(',"client_id":'),
  grant: asciiBytes(',"grant":'),
  client_ip: asciiBytes(',"client_ip":'),
  http_method: asciiBytes(',"http_method":'),
  rpc_method: asciiBytes(',"rpc_method":'),
  rpc_id: asciiBytes(',"rpc_id":'),
  tool: asciiBytes(',"tool":'),
  prompt: asciiBytes(',"prompt":'),
  resource: asciiBytes(',"resource":'),
  arguments: asciiBytes(',"arguments":'),
  calls: asciiBytes(',"calls":'),
  pin_violations: asciiBytes(',"pin_violations":'),
  decision: asciiBytes(',"decision":'),
  reason: asciiBytes(',"reason":'),
  status: asciiBytes(',"status":'),
  latency_ms: asciiBytes(',"latency_ms":'),
  upstream_ms: asciiBytes(',"upstream_ms":'),
  bytes_in: asciiBytes(',"bytes_in":'),
  bytes_out: asciiBytes(',"bytes_out":'),
  session: asciiBytes(',"session":'),
  protocol_version: asciiBytes(',"protocol_version":'),
  aborted_true: asciiBytes(',"aborted":true'),
  aborted_false: asciiBytes(',"aborted":false'),
  events_filtered: asciiBytes(',"events_filtered":'),
  roots_withheld: asciiBytes(',"roots_withheld":'),
  roots_withheld_uris: asciiBytes(',"roots_withheld_uris":'),
  rate_limit_fallback: asciiBytes(',"rate_limit_fallback":'),
  user_agent: asciiBytes(',"user_agent":'),
  end: asciiBytes('}\n'),
};

/** The largest time value a Date holds (ECMAScript's TimeClip). */
const MAX_TIME = 8.64e15;
/** The second of the last time written, and its quote and isoTime up to the "." before the ms. */
let second = NaN;
let secondPrefix: Uint8Array = new Uint8Array(0);

/** `"` + isoTime(ms) + `"`, its part up to the seconds made once per second (as iso-time.ts does). */
function writeTime(out: LineSink, ms: number): void {
  if (!Number.isInteger(ms) || ms > MAX_TIME || ms < -MAX_TIME) {
    writeString(out, isoTime(ms));
    return;
  }
  const s = Math.floor(ms / 1000);
  if (s !== second) {
    secondPrefix = asciiBytes('"' + isoTime(s * 1000).slice(0, -4));
    second = s;
  }
  writeRaw(out, secondPrefix);
  const b = out.room(5);
  let at = out.at;
  const milli = ms - s * 1000;
  b[at++] = 0x30 + Math.floor(milli / 100);
  b[at++] = 0x30 + (Math.floor(milli / 10) % 10);
  b[at++] = 0x30 + (milli % 10);
  b[at++] = 0x5a; // Z
  b[at++] = 0x22;
  out.at = at;
}

/** A field whose value is a string clipped to `max` (record.ts's clip), when it is a string. */
function clipped(out: LineSink, key: Uint8Array, value: string | undefined, max: number): void {
  if (typeof value !== 'string') return;
  writeRaw(out, key);
  writeString(out, clip(value, max) as string);
}

function rpcId(out: LineSink, value: JsonRpcId | null | undefined): void {
  if (value === null || value === undefined) return;
  writeRaw(out, K.rpc_id);
  if (typeof value === 'string') writeString(out, clip(value, MAX_NAME) as string);
  else writeNumber(out, value);
}

/**
 * Writes the request's line at `out.at`; `now` and `mono` are buildAuditRecord's. Throws where
 * buildAuditRecord would (an invalid time), before or after writing part of the line: the sink
 * (LineBuffer.append) keeps nothing of a line whose writing threw.
 */
export function writeAuditLine(
  out: LineSink,
  ctx: RequestContext,
  now: number,
  mono: number,
  options: AuditRecordOptions = NO_ARGUMENTS,
): void {
  const principal = ctx.principal;
  const messages = ctx.messages;

  let single: CallRecord | undefined;
  let args: string | undefined;
  if (!ctx.batch) {
    single = ctx.calls.length > 0 ? ctx.calls[0] : messageCall(messages?.[0]);
    if (options.sanitizeArguments !== undefined && single !== undefined) {
      const value = toolArguments(single, messages?.[0], options.sanitizeArguments, {
        left: options.argumentBudget,
      });
      args = JSON.stringify(value);
    }
  }

  writeRaw(out, K.time);
  writeTime(out, now);
  writeRaw(out, K.request_id);
  writeString(out, ctx.requestId);
  if (principal !== undefined) {
    if (principal.kind === 'key') {
      writeRaw(out, K.key);
      writeString(out, principal.name);
      if (principal.keyId !== undefined) {
        writeRaw(out, K.key_id);
        writeString(out, principal.keyId);
      }
    } else if (principal.kind === 'oauth') {
      clipped(out, K.sub, principal.name, MAX_NAME);
      clipped(out, K.client_id, principal.clientId, MAX_NAME);
      if (principal.grant !== undefined) {
        writeRaw(out, K.grant);
        writeString(out, principal.grant);
      }
    }
  }
  if (ctx.clientIp !== '') {
    writeRaw(out, K.client_ip);
    writeString(out, ctx.clientIp);
  }
  const httpMethod = ctx.req.method;
  if (httpMethod !== undefined) {
    writeRaw(out, K.http_method);
    writeString(out, httpMethod);
  }
  if (single !== undefined) {
    clipped(out, K.rpc_method, single.rpc_method, MAX_NAME);
    rpcId(out, single.rpc_id);
    clipped(out, K.tool, single.tool, MAX_NAME);
    clipped(out, K.prompt, single.prompt, MAX_NAME);
    clipped(out, K.resource, single.resource, MAX_URI);
  }
  if (args !== undefined) {
    writeRaw(out, K.arguments);
    writeJson(out, args);
  }
  if (ctx.batch) {
    writeRaw(out, K.calls);
    writeJson(out, JSON.stringify(batchCalls(ctx, options)));
  }
  const pins = pinViolations(ctx);
  if (pins !== undefined) {
    writeRaw(out, K.pin_violations);
    writeJson(out, JSON.stringify(pins));
  }
  writeRaw(out, K.decision);
  writeString(out, requestDecision(ctx));
  const reason = requestReason(ctx);
  if (reason !== undefined) {
    writeRaw(out, K.reason);
    writeString(out, reason);
  }
  writeRaw(out, K.status);
  writeNumber(out, ctx.status);
  writeRaw(out, K.latency_ms);
  writeMillis(out, mono - ctx.startedMono);
  if (ctx.upstreamMs !== undefined) {
    writeRaw(out, K.upstream_ms);
    writeMillis(out, ctx.upstreamMs);
  }
  writeRaw(out, K.bytes_in);
  writeNumber(out, ctx.bytesIn);
  writeRaw(out, K.bytes_out);
  writeNumber(out, ctx.bytesOut);
  if (ctx.session !== undefined) {
    writeRaw(out, K.session);
    writeString(out, ctx.session);
  }
  clipped(out, K.protocol_version, ctx.protocolVersion, 64);
  writeRaw(out, ctx.aborted ? K.aborted_true : K.aborted_false);
  if (ctx.eventsFiltered !== undefined) {
    writeRaw(out, K.events_filtered);
    writeNumber(out, ctx.eventsFiltered);
  }
  if (ctx.rootsWithheld !== undefined) {
    writeRaw(out, K.roots_withheld);
    writeNumber(out, ctx.rootsWithheld.count);
    const uris = withheldUris(ctx);
    if (uris !== undefined) {
      writeRaw(out, K.roots_withheld_uris);
      writeJson(out, JSON.stringify(uris));
    }
  }
  if (ctx.rateLimitFallback !== undefined) {
    writeRaw(out, K.rate_limit_fallback);
    writeString(out, ctx.rateLimitFallback);
  }
  clipped(out, K.user_agent, loggedUserAgent(ctx.req.headers), MAX_NAME);
  writeRaw(out, K.end);
}

/**
 * One request's line as a LineSource, for the writer (one per audit log, reused: set, appended,
 * cleared, so no object is made per request and no context is kept after its line).
 */
export class AuditLineSource implements LineSource {
  ctx: RequestContext | undefined = undefined;
  now = 0;
  mono = 0;
  readonly options: AuditRecordOptions;

  constructor(options: AuditRecordOptions = NO_ARGUMENTS) {
    this.options = options;
  }

  writeTo(out: LineSink): void {
    writeAuditLine(out, this.ctx as RequestContext, this.now, this.mono, this.options);
  }
}

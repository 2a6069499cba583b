/**
 * The floor with the full pipeline's promised work added, each part done the shortest way a
 * hand-written Node proxy would do it: what issue 14's "1.3x the floor" leaves room for. Per request
 * it does what the pipeline configuration asks of mcpgate, and nothing that makes mcpgate safe
 * beyond that:
 *
 * - a request id (a counter behind a random prefix), sent upstream and back as X-Request-Id;
 * - the API key: `Authorization: Bearer`, its SHA-256 (one-shot, as a latin1 string) looked up in a
 *   Map, compared in constant time;
 * - a token bucket per key (refill from the monotonic clock, take one);
 * - the body read as the floor reads it, then `JSON.parse`, a check of `jsonrpc`, `method` and, for
 *   `tools/call`, `params.name` against the allowlist (`*`);
 * - a request tag: HMAC-SHA256 of the client's id (two one-shot hashes over the key's pads), and
 *   the body forwarded as `JSON.stringify` of the parsed value with the tag as its id;
 * - the response: held whole (as the floor holds it), its id found as bytes and the client's id
 *   written back in its place;
 * - an audit line: `JSON.stringify` of a flat record, appended to a string written to the file with
 *   `fs.write` every 10 ms;
 * - metrics: a request counter by key and status, and a latency histogram, as plain numbers.
 *
 * What it leaves out of mcpgate's promises: the strict parse (one reading of keys, escapes,
 * numbers and UTF-8 for every parser), the HTTP envelope rules (content type, charset, Host,
 * header allowlists both ways), the session binding, matching responses on streams,
 * every error path and its audit line, fairness, budgets and timeouts. It is a yardstick, not a
 * gateway: `node bench/ab.ts --config pipeline --minimal` runs it beside the floor and mcpgate. Its
 * relay is the floor's, written out again (with the id put back), so the floor stays as it is measured.
 *
 * `--skip auth,ratelimit,parse,tag,audit,metrics` leaves steps out (`parse` takes the tag with it:
 * the body is forwarded as read), to tell what each costs on this stack when done plainly
 * (`ab.ts --minimal-skip LIST`).
 *
 *   node bench/minimal-gateway.ts --upstream URL --key-hash HEX --audit FILE [--port 0] [--skip LIST]
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { openSync, write } from 'node:fs';
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    upstream: { type: 'string' },
    'key-hash': { type: 'string' },
    audit: { type: 'string' },
    skip: { type: 'string', default: '' },
  },
});
const STEPS = ['auth', 'ratelimit', 'parse', 'tag', 'audit', 'metrics'];
const skip = new Set(values.skip.split(',').filter((step) => step !== ''));
for (const step of skip) if (!STEPS.includes(step)) throw new Error(`--skip: unknown step ${step}`);
const [AUTH, RATELIMIT, PARSE, AUDIT, METRICS] = ['auth', 'ratelimit', 'parse', 'audit', 'metrics'].map(
  (step) => !skip.has(step),
);
const TAG = PARSE && !skip.has('tag');
if (values.upstream === undefined || values['key-hash'] === undefined || values.audit === undefined)
  throw new Error('--upstream URL, --key-hash HEX and --audit FILE are required');
const upstream = new URL(values.upstream);
const pool = new Pool(upstream.origin, { connections: 256 });
const FORWARDED = ['content-type', 'accept', 'mcp-session-id', 'mcp-protocol-version'] as const;

const keyDigest = Buffer.from(values['key-hash'], 'hex');
const keys = new Map([[keyDigest.toString('latin1'), { label: 'bench', allow: new Set(['*']) }]]);
const bucket = { capacity: 1e9, perMs: 1e6, tokens: 1e9, at: performance.now() };
const tagKey = randomBytes(32);
// HMAC-SHA256 as two one-shot hashes over the key's padded blocks, written once (createHmac per
// request measured about 90 µs in this process, bench/README.md): the cheapest form Node's API has.
const innerPad = Buffer.alloc(64, 0x36);
const outerPad = Buffer.alloc(64 + 32, 0x5c);
for (let i = 0; i < tagKey.length; i++) {
  innerPad[i]! ^= tagKey[i]!;
  outerPad[i]! ^= tagKey[i]!;
}
const inner = Buffer.alloc(64 + 1024);
innerPad.copy(inner);
/** base64url of the first 12 bytes of HMAC-SHA256(tagKey, message), for messages under 1 KiB. */
function hmac12(message: string): string {
  const n = 64 + inner.write(message, 64, 'utf8');
  outerPad.write(hash('sha256', inner.subarray(0, n), 'binary'), 64, 'latin1');
  return hash('sha256', outerPad, 'base64url').slice(0, 16);
}
const idPrefix = randomBytes(6).toString('base64url');
let counter = 0;

const auditFd = openSync(values.audit, 'a');
let pending = '';
let scheduled = false;
function flushAudit(): void {
  scheduled = false;
  const text = pending;
  pending = '';
  write(auditFd, text, () => {});
}
const requests = new Map<string, number>();
const BUCKETS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000];
const histogram = new Float64Array(BUCKETS.length + 2);

function refuse(res: ServerResponse, status: number, id: unknown, message: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ jsonrpc: '2.0', id: id ?? null, error: { code: -32600, message } }));
}

const server = createServer((req, res) => {
  const started = performance.now();
  const requestId = `${idPrefix}${(counter++).toString(36)}`;
  const auth = req.headers.authorization;
  let entry = AUTH ? undefined : keys.values().next().value;
  if (AUTH && typeof auth === 'string' && auth.startsWith('Bearer ')) {
    const digest = hash('sha256', auth.slice(7), 'binary');
    const found = keys.get(digest);
    if (found !== undefined && timingSafeEqual(Buffer.from(digest, 'latin1'), keyDigest)) entry = found;
  }
  if (entry === undefined) return refuse(res, 401, null, 'unauthorized');
  const key = entry;
  if (RATELIMIT) {
    const now = performance.now();
    bucket.tokens = Math.min(bucket.capacity, bucket.tokens + (now - bucket.at) * bucket.perMs);
    bucket.at = now;
    if (bucket.tokens < 1) return refuse(res, 429, null, 'rate limited');
    bucket.tokens -= 1;
  }

  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    let message: { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: { name?: unknown } };
    try {
      message = PARSE ? JSON.parse(raw.toString('utf8')) : { jsonrpc: '2.0', method: 'unread' };
    } catch {
      return refuse(res, 400, null, 'parse error');
    }
    const clientId = message.id;
    if (message.jsonrpc !== '2.0' || typeof message.method !== 'string')
      return refuse(res, 400, clientId, 'invalid request');
    const tool = message.method === 'tools/call' ? message.params?.name : undefined;
    if (tool !== undefined && (typeof tool !== 'string' || !(key.allow.has('*') || key.allow.has(tool))))
      return refuse(res, 403, clientId, 'denied');
    let tag: string | undefined;
    if (TAG && clientId !== undefined) {
      const mac = hmac12(`${requestId}.${JSON.stringify(clientId)}`);
      tag = `g1${requestId}.${mac}`;
      message.id = tag;
    }
    const body = TAG ? JSON.stringify(message) : raw;

    const headers: string[] = ['x-request-id', requestId];
    for (const name of FORWARDED) {
      const value = req.headers[name];
      if (typeof value === 'string') headers.push(name, value);
    }
    const out: Buffer[] = [];
    let status = 0;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(_controller, code, upstreamHeaders) {
        status = code;
        res.statusCode = code;
        res.setHeader('x-request-id', requestId);
        for (const name of ['content-type', 'mcp-session-id']) {
          const value = upstreamHeaders[name];
          if (value !== undefined) res.setHeader(name, value);
        }
      },
      onResponseData(_controller, chunk) {
        out.push(chunk);
      },
      onResponseEnd() {
        let answer = out.length === 1 ? out[0]! : Buffer.concat(out);
        const quoted = `"${tag}"`;
        const at = tag === undefined ? -1 : answer.indexOf(quoted);
        if (at !== -1) {
          answer = Buffer.concat([
            answer.subarray(0, at),
            Buffer.from(JSON.stringify(clientId)),
            answer.subarray(at + Buffer.byteLength(quoted)),
          ]);
        }
        res.end(answer);
        const ms = performance.now() - started;
        if (METRICS) {
          const label = `${key.label} ${status}`;
          requests.set(label, (requests.get(label) ?? 0) + 1);
          let b = 0;
          while (b < BUCKETS.length && ms > BUCKETS[b]!) b++;
          histogram[b]!++;
          histogram[BUCKETS.length + 1]! += ms;
        }
        if (!AUDIT) return;
        pending += `${JSON.stringify({
          time: new Date().toISOString(),
          request_id: requestId,
          key: key.label,
          http_method: 'POST',
          rpc_method: message.method,
          rpc_id: clientId,
          tool,
          decision: 'allow',
          status,
          latency_ms: Math.round(ms * 1000) / 1000,
          bytes_in: raw.length,
          bytes_out: answer.length,
          aborted: false,
          user_agent: req.headers['user-agent'],
        })}\n`;
        if (!scheduled) {
          scheduled = true;
          setTimeout(flushAudit, 10);
        }
      },
      onResponseError() {
        if (!res.headersSent) res.statusCode = 502;
        res.end();
      },
    };
    pool.dispatch({ method: 'POST', path: upstream.pathname, headers, body }, handler);
  });
});
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));

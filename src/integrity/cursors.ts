/**
 * Sealed list cursors. An upstream's `nextCursor` is opaque to clients but not to the upstream, and
 * many write it from the page's last entry (the MCP TypeScript SDK's paginate: base64url of
 * "after:" and the last item's name). A page whose last entries a key may not see would hand the
 * key their names in the cursor; and a cursor the client writes itself ("after:secret_admin") makes
 * the upstream answer differently for a hidden entry and a missing one. So a client never sees the
 * upstream's cursor, and the upstream never reads one the client wrote:
 *
 *   sealed = "c1." + base64url(iv || AES-256-GCM(k, iv, padded; aad = bindingId "\n" kind) || tag)
 *   padded = u16 length || UTF-8 of the upstream cursor || zeros, to a multiple of PAD_BYTES
 *
 * with a random 96-bit iv and k = HMAC-SHA256(session secret, LABEL), so replicas that share
 * `auth.session_secret` open each other's cursors. A seal opens only for the principal and the list
 * kind it was made for (the additional data): a key cannot replay another key's cursor, nor a tools
 * cursor on prompts/list. Encrypted rather than signed, since the content is what must not be seen;
 * padded, since its length would tell the length of a hidden name it spells.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import type { ListKind } from '../policy/methods.ts';
import type { JsonRpcId, JsonRpcMessage } from '../jsonrpc/message.ts';
import type { ResponseAction } from '../policy/filter-list.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import { applyEdits, applyEditsToAscii, DUPLICATE, messageStarts, pathSpan } from './json-spans.ts';
import type { Edit } from './json-spans.ts';

const LABEL = 'mcpgate list cursor v1';
const PREFIX = 'c1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const LONE_SURROGATE = /\p{Surrogate}/u;
/** Longest upstream cursor sealed, in UTF-8 bytes (an upstream's cursor is a short token). */
export const MAX_CURSOR_BYTES = 8192;
/** Cursors are padded to a multiple of this: a seal tells the length only to this grain. */
const PAD_BYTES = 256;
const LENGTH_BYTES = 2;
const MAX_PADDED = Math.ceil((MAX_CURSOR_BYTES + LENGTH_BYTES) / PAD_BYTES) * PAD_BYTES;
/** The longest seal open() reads. */
const MAX_SEAL_CHARS = 3 + Math.ceil(((IV_BYTES + MAX_PADDED + TAG_BYTES) * 4) / 3);

/**
 * Seals an upstream cursor for one principal (bound once per exchange, by its binding id); undefined
 * for one that cannot be sealed (not well-formed UTF-16, longer than MAX_CURSOR_BYTES): the client
 * then gets no cursor.
 */
export type CursorSealer = (kind: ListKind, cursor: string) => string | undefined;

export interface Cursors {
  /** The sealer for `bindingId`'s list responses. */
  sealerFor(bindingId: string): CursorSealer;
  /** The upstream's cursor inside a seal made for `bindingId` and `kind`; undefined for any other. */
  open(bindingId: string, kind: ListKind, presented: string): string | undefined;
}

/** @param secret the session secret (at least 32 bytes). */
export function createCursors(secret: Buffer): Cursors {
  if (!Buffer.isBuffer(secret) || secret.length < 32)
    throw new TypeError('the cursor secret must be at least 32 bytes');
  const key = createHmac('sha256', secret).update(LABEL).digest();
  const aad = (bindingId: string, kind: ListKind) => Buffer.from(`${bindingId}\n${kind}`);

  function seal(bindingId: string, kind: ListKind, cursor: string): string | undefined {
    // What cannot come back as it went (a lone surrogate, a cursor past the bound) is not passed on.
    if (cursor.length > MAX_CURSOR_BYTES || LONE_SURROGATE.test(cursor)) return undefined;
    const length = Buffer.byteLength(cursor, 'utf8');
    if (length > MAX_CURSOR_BYTES) return undefined;
    const padded = Buffer.alloc(Math.ceil((length + LENGTH_BYTES) / PAD_BYTES) * PAD_BYTES);
    padded.writeUInt16BE(length, 0);
    padded.write(cursor, LENGTH_BYTES, 'utf8');
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(aad(bindingId, kind));
    const body = Buffer.concat([cipher.update(padded), cipher.final()]);
    return PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  return {
    sealerFor(bindingId) {
      return (kind, cursor) => seal(bindingId, kind, cursor);
    },
    open(bindingId, kind, presented) {
      if (presented.length > MAX_SEAL_CHARS || !presented.startsWith(PREFIX)) return undefined;
      const text = presented.slice(PREFIX.length);
      if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
      const raw = Buffer.from(text, 'base64url');
      // The encoding is canonical: one spelling per seal.
      if (raw.length < IV_BYTES + TAG_BYTES || raw.toString('base64url') !== text) return undefined;
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(aad(bindingId, kind));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      try {
        const plain = Buffer.concat([
          decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)),
          decipher.final(),
        ]);
        const length = plain.readUInt16BE(0);
        if (LENGTH_BYTES + length > plain.length) return undefined;
        return plain.toString('utf8', LENGTH_BYTES, LENGTH_BYTES + length);
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * The judged bytes with each list request's `params.cursor` (a seal this gateway made for the
 * principal and the list kind its plan names) replaced by the upstream's cursor inside it. A list
 * request whose cursor is not such a seal is refused (-32602), so the upstream never reads a cursor
 * a client wrote. Requests without a list plan (no authentication: nothing is hidden, nothing
 * sealed) keep theirs.
 */
export function openRequestCursors(
  bytes: Buffer,
  messages: readonly JsonRpcMessage[],
  plans: ReadonlyMap<JsonRpcId, ResponseAction> | undefined,
  bindingId: string,
  cursors: Cursors,
): Buffer {
  if (plans === undefined) return bytes;
  let edits: Edit[] | undefined;
  let text: string | undefined;
  let starts: number[] | undefined;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as { id?: JsonRpcId; method?: string; params?: Record<string, unknown> };
    if (m.id === undefined || m.method === undefined) continue;
    const kind = plans.get(m.id);
    if (kind === undefined || typeof kind === 'object' || kind === 'contents') continue;
    const params = m.params;
    if (params === undefined || !Object.hasOwn(params, 'cursor')) continue;
    const presented = params.cursor;
    const cursor = typeof presented === 'string' ? cursors.open(bindingId, kind, presented) : undefined;
    text ??= bytes.toString('utf8');
    starts ??= messageStarts(text);
    const span = cursor === undefined ? undefined : pathSpan(text, starts[i] as number, ['params', 'cursor']);
    if (span === undefined || span === DUPLICATE) {
      throw new GatewayError('ERR_INVALID_PARAMS', {
        message: 'Invalid params: the cursor is not one this gateway gave this key for this list',
        rpcId: m.id,
      });
    }
    (edits ??= []).push({ start: span.start, end: span.end, text: JSON.stringify(cursor) });
  }
  if (edits === undefined || text === undefined) return bytes;
  return text.length === bytes.length
    ? applyEditsToAscii(bytes, edits)
    : Buffer.from(applyEdits(text, edits));
}

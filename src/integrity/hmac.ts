/**
 * HMAC-SHA256 (RFC 2104) for one key, without a Hmac object per call: the key's inner and outer
 * padded blocks (K ^ ipad, K ^ opad) are written once into two scratch buffers, and each MAC is two
 * one-shot `crypto.hash` calls,
 *
 *   HMAC(K, m) = SHA256((K ^ opad) || SHA256((K ^ ipad) || m))
 *
 * which is the definition itself, so the output is byte for byte what `createHmac` gives (the tests
 * compare them), and tags signed by a build that used `createHmac` verify here and back. About a
 * third of createHmac's cost on a short message: no Hmac object, no KeyObject import, no Buffer for
 * the digest. A message longer than the scratch buffer (a tag of a huge client id) takes createHmac.
 *
 * The scratch buffers are shared by every call of one MAC; that is safe because a call runs to its
 * end synchronously.
 */
import { createHmac, createSecretKey, hash } from 'node:crypto';

const BLOCK = 64; // SHA-256's block size
const DIGEST = 32;
/** Message bytes the scratch buffer holds; longer messages take createHmac. */
const SCRATCH = 2048;
const NEWLINE = 0x0a;
/** Inner-hash input lengths (pad included) whose view is kept. */
const VIEWS = BLOCK + 512;

/**
 * base64url of the first `bytes` bytes of HMAC-SHA256(key, UTF-8(a + "\n" + b)): the shape both
 * request tags and session bindings sign (a principal's binding id, then what it vouches for).
 */
export type BindingMac = (a: string, b: string) => string;

export function createBindingMac(key: Buffer, bytes: number): BindingMac {
  if (!Buffer.isBuffer(key) || key.length === 0 || key.length > BLOCK)
    throw new TypeError('an HMAC key here is 1 to 64 bytes');
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > DIGEST)
    throw new TypeError('an HMAC-SHA256 is truncated to 1 to 32 bytes');
  const inner = Buffer.alloc(BLOCK + SCRATCH);
  const outer = Buffer.alloc(BLOCK + DIGEST);
  for (let i = 0; i < BLOCK; i++) {
    const k = i < key.length ? (key[i] as number) : 0;
    inner[i] = k ^ 0x36;
    outer[i] = k ^ 0x5c;
  }
  // Views of `inner` by length, made once each for short messages (a subarray costs a fifth of a
  // hash); at most VIEWS of them.
  const views: Buffer[] = [];
  const slow = createSecretKey(key);
  // base64url of whole groups of 3 bytes is a prefix of the digest's base64url.
  const prefixChars = bytes % 3 === 0 ? (bytes / 3) * 4 : 0;
  /** The `a` whose bytes and newline are in `inner` now, and the index after them. */
  let written: string | undefined;
  let afterA = BLOCK;

  return function mac(a, b) {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if ((a.length + b.length) * 3 + 1 > SCRATCH) {
      const full = createHmac('sha256', slow).update(a).update('\n').update(b).digest();
      return full.subarray(0, bytes).toString('base64url');
    }
    // `a` is a principal's binding id, the same string for each of its requests: written once.
    if (a !== written) {
      afterA = writeUtf8(inner, a, BLOCK);
      inner[afterA++] = NEWLINE;
      written = a;
    }
    const n = writeUtf8(inner, b, afterA);
    const view = n <= VIEWS ? (views[n] ??= inner.subarray(0, n)) : inner.subarray(0, n);
    // 'binary' is latin1: one character per byte, written back as the same bytes.
    outer.write(hash('sha256', view, 'binary'), BLOCK, 'latin1');
    if (prefixChars !== 0) return hash('sha256', outer, 'base64url').slice(0, prefixChars);
    outer.write(hash('sha256', outer, 'binary'), BLOCK, 'latin1');
    return outer.toString('base64url', BLOCK, BLOCK + bytes);
  };
}

/**
 * Writes `text` as UTF-8 into `into` at `at` and returns the index after it: ASCII (a tag's body,
 * an API key's binding id) byte by byte, which is cheaper than an encoder call for a few dozen
 * characters; anything else by Buffer#write, from its first non-ASCII character on.
 */
function writeUtf8(into: Buffer, text: string, at: number): number {
  const length = text.length;
  for (let k = 0; k < length; k++) {
    const c = text.charCodeAt(k);
    if (c >= 0x80) return at + k + into.write(k === 0 ? text : text.slice(k), at + k, 'utf8');
    into[at + k] = c;
  }
  return at + length;
}

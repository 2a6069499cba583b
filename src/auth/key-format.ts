/**
 * The format of keys minted by `mcpgate keygen`, recognisable by secret scanners and self-checking:
 *
 *   mcpg_ + base62(32 random bytes, 43 chars) + base62(CRC32 of those 43 chars, 6 chars)   (54 chars)
 *
 * The checksum lets the gateway refuse a mistyped or truncated key without a lookup, and lets a
 * scanner tell a real key from look-alike text. It is not a secret and proves nothing about who
 * minted the key: only the configured SHA-256 does. Keys minted elsewhere (any other prefix) are
 * accepted as opaque strings.
 */
import { crc32 } from 'node:zlib';

export const KEY_PREFIX = 'mcpg_';
export const KEY_RANDOM_BYTES = 32;
const BODY_CHARS = 43; // 62^43 > 2^256
const CHECK_CHARS = 6; // 62^6 > 2^32
const BODY_END = KEY_PREFIX.length + BODY_CHARS;
export const KEY_LENGTH = BODY_END + CHECK_CHARS;
/** Longest credential the gateway will hash; anything longer is refused before any work. */
export const MAX_KEY_LENGTH = 512;
/** For secret scanners (gitleaks, trufflehog, GitHub custom patterns). */
export const KEY_SCANNER_PATTERN = String.raw`\bmcpg_[0-9A-Za-z]{49}\b`;

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A new key from exactly 32 bytes of CSPRNG output (the caller owns the randomness). */
export function mintKey(random: Buffer): string {
  if (random.length !== KEY_RANDOM_BYTES)
    throw new TypeError(`mintKey needs ${KEY_RANDOM_BYTES} random bytes`);
  const body = base62(BigInt(`0x${random.toString('hex')}`), BODY_CHARS);
  return KEY_PREFIX + body + base62(BigInt(crc32(body)), CHECK_CHARS);
}

/**
 * True for a well-formed `mcpg_` key whose checksum matches: the same answer as matching
 * `^mcpg_[0-9A-Za-z]{49}$` and comparing with zlib's crc32 of the body (a test holds them together), in one pass over the
 * characters with no regex, slice or native call, since every request with a key pays it.
 */
export function hasValidChecksum(key: string): boolean {
  if (key.length !== KEY_LENGTH || !key.startsWith(KEY_PREFIX)) return false;
  let crc = -1;
  for (let i = KEY_PREFIX.length; i < BODY_END; i++) {
    const c = key.charCodeAt(i);
    if (digit(c) < 0) return false;
    crc = (CRC_TABLE[(crc ^ c) & 0xff] as number) ^ (crc >>> 8);
  }
  let sum = 0;
  for (let i = BODY_END; i < KEY_LENGTH; i++) {
    const d = digit(key.charCodeAt(i));
    if (d < 0) return false;
    sum = sum * 62 + d;
  }
  return sum === ~crc >>> 0;
}

/** CRC-32 (IEEE, reflected, zlib's) of one byte, by byte value. */
const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

export function looksLikeMintedKey(value: string): boolean {
  return value.startsWith(KEY_PREFIX);
}

/** Only visible ASCII (0x21-0x7E): no spaces, control bytes or anything beyond ASCII. */
export function isVisibleAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

function base62(value: bigint, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(value % 62n)] + out;
    value /= 62n;
  }
  if (value !== 0n) throw new TypeError('value does not fit the width');
  return out;
}

/** The value of one base62 digit (0-9, A-Z, a-z), or -1 for any other character. */
function digit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x5a) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 36;
  return -1;
}

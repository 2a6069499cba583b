/**
 * The request id: the client's X-Request-Id when it is sane, otherwise a fresh UUID (version 4).
 * An id that looks like a credential (a key or a JWT: a client that put its key in the wrong
 * header) is replaced too, since the id is logged, echoed and sent upstream.
 */
import type { IncomingMessage } from 'node:http';
import { randomFillSync } from 'node:crypto';
import { looksLikeCredential } from '../auth/query-credential.ts';

const SANE = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SANE.test(given) && !looksLikeCredential(given) ? given : randomId();
}

/**
 * A random UUID, as crypto.randomUUID gives it (16 bytes of the CSPRNG, version 4, RFC 9562
 * variant, lower-case hex), written into one template and read out as one string. randomUUID builds
 * its string by joining some twenty pieces, about 0.65 KB of garbage per request; this makes 60 B.
 * The random bytes are drawn 256 ids at a time, as randomUUID draws them 128 at a time.
 */
const IDS_PER_DRAW = 256;
const pool = Buffer.alloc(16 * IDS_PER_DRAW);
let next = pool.length;
const text = Buffer.from('00000000-0000-4000-8000-000000000000', 'latin1');
/** Where each byte's two hex digits go in the text. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const HEX = Buffer.from('0123456789abcdef', 'latin1');

export function randomId(): string {
  if (next === pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  for (let i = 0; i < 16; i++) {
    let byte = pool[next + i] as number;
    if (i === 6) byte = (byte & 0x0f) | 0x40;
    else if (i === 8) byte = (byte & 0x3f) | 0x80;
    const at = AT[i] as number;
    text[at] = HEX[byte >> 4] as number;
    text[at + 1] = HEX[byte & 0x0f] as number;
  }
  next += 16;
  return text.toString('latin1');
}

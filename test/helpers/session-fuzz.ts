/**
 * The request fuzzer's second half (review-fuzz2): what test/helpers/request-fuzz.ts does not
 * mutate. Cases are whole HTTP requests built from a seeded choice of method (POST, GET, DELETE, and
 * others), the session a request names (`Mcp-Session-Id` on Streamable HTTP, the HTTP+SSE endpoint's
 * `?session=`: the key's own, another of its sessions, another key's, the upstream's raw id, and
 * spellings of each), a GET's `Last-Event-ID`, mirror headers on bodiless requests, and
 * `notifications/cancelled` naming pending requests by ids in every spelling. The same seed and case
 * number always give the same request.
 */
import { prng } from './request-fuzz.ts';
import type { Rand } from './request-fuzz.ts';

const int = (r: Rand, n: number): number => Math.floor(r() * n);
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)] as T;

/** Spellings of a sealed id (`upstream.mac`) a gateway must not take for another. */
export function spellings(r: Rand, sealed: string): string {
  const dot = sealed.lastIndexOf('.');
  const flip = (s: string, i: number) => {
    const c = s[i] as string;
    const f = c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase();
    return s.slice(0, i) + f + s.slice(i + 1);
  };
  return pick(r, [
    sealed,
    sealed,
    sealed,
    ` ${sealed} `,
    `${sealed}\t`,
    sealed.toUpperCase(),
    flip(sealed, dot + 1 + int(r, sealed.length - dot - 1)),
    flip(sealed, int(r, Math.max(1, dot))),
    sealed.slice(0, -1),
    `${sealed}=`,
    `${sealed}A`,
    `${sealed}.${sealed.slice(dot + 1)}`,
    sealed.slice(0, dot),
    `${sealed}, ${sealed}`,
    `${sealed},${sealed}`,
    encodeURIComponent(sealed).replace(/\./g, '%2E'),
    sealed.replace('.', '%2e'),
    `"${sealed}"`,
    '',
    ' ',
    'null',
    sealed.slice(dot),
  ]);
}

/** requestId spellings of a cancellation naming the client id `id` (a number or a string). */
export function cancelIdSpellings(r: Rand, id: number | string): string {
  if (typeof id === 'string')
    return pick(r, [
      JSON.stringify(id),
      JSON.stringify(id),
      `"${[...id].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`,
      JSON.stringify(` ${id}`),
      JSON.stringify(id.toUpperCase()),
      Number.isNaN(Number(id)) ? JSON.stringify(`${id}\u0000`) : id,
      `[${JSON.stringify(id)}]`,
      `{"id":${JSON.stringify(id)}}`,
    ]);
  return pick(r, [
    String(id),
    String(id),
    `${id}.0`,
    `${id}e0`,
    `${id * 10}e-1`,
    `${id}.00000000000000001`,
    `"${id}"`,
    `-${id}`,
    id === 0 ? '-0' : `${id}.5`,
    '9007199254740993',
    '1e400',
    'null',
    'true',
    `[${id}]`,
  ]);
}

export { prng };
export type { Rand };

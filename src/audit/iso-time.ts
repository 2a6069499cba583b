/**
 * The audit line's `time`: exactly `new Date(ms).toISOString()`, without a Date and a formatted
 * string per line. The part up to the seconds is formatted once per second and kept; each line adds
 * its milliseconds from a table. Anything but a whole number of milliseconds takes toISOString
 * itself (same output, same RangeError for an invalid time).
 */
/** The largest time value a Date holds (ECMAScript's TimeClip). */
const MAX_TIME = 8.64e15;
const MILLIS = Array.from({ length: 1000 }, (_, ms) => `${String(ms).padStart(3, '0')}Z`);

let second = NaN;
/** toISOString of `second`'s start, up to and including the "." before the milliseconds. */
let prefix = '';

export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms > MAX_TIME || ms < -MAX_TIME) return new Date(ms).toISOString();
  const s = Math.floor(ms / 1000);
  if (s !== second) {
    const iso = new Date(s * 1000).toISOString();
    prefix = iso.slice(0, -4);
    second = s;
  }
  return prefix + (MILLIS[ms - s * 1000] as string);
}

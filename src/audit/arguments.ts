/**
 * Tool arguments for the audit line (`audit.log_arguments: true`): a copy with configured field
 * names redacted at any depth (case-insensitive) and bounded in size, so one request cannot blow up
 * the log. A string or member name that holds a key or a token (auth/query-credential.ts), under
 * whatever name, is redacted too, as in every other client-supplied value the line records: a key
 * pasted into a `query`, a token in a `url`. The input is parsed JSON (no cycles, no getters); the
 * output is plain JSON values.
 */
import { isRawNumber, rawNumberText } from '../jsonrpc/lossless.ts';
import { clip } from './clip.ts';

export const REDACTED = '[redacted]';
export const TRUNCATED = '[truncated]';

export interface ArgumentLimits {
  /** Nesting below this depth becomes `[truncated]`. */
  readonly maxDepth: number;
  /** Longer strings are cut and end with `…`. */
  readonly maxString: number;
  /** Object keys / array items kept per level; the rest are summarised. */
  readonly maxEntries: number;
  /** Characters (roughly) one audit line may spend on arguments, across all its calls. */
  readonly budget: number;
}

export const DEFAULT_ARGUMENT_LIMITS: ArgumentLimits = Object.freeze({
  maxDepth: 6,
  maxString: 1024,
  maxEntries: 64,
  budget: 16 * 1024,
});

/** Shared by the calls of one record, so a batch gets one budget, not one per call. */
export interface Budget {
  left: number;
}

export type SanitizeArguments = (value: unknown, budget: Budget) => unknown;

/** Compiles the redaction list once; the returned function copies, redacts and bounds. */
export function createArgumentSanitizer(
  redact: Iterable<string>,
  limits: ArgumentLimits = DEFAULT_ARGUMENT_LIMITS,
): SanitizeArguments {
  // A field is redacted when its name contains a configured name, case-insensitively and ignoring
  // `-` and `_`: `token` covers access_token and refreshToken, `apikey` covers api_key and X-API-Key.
  // Redacting too much is the safe side.
  const needles: string[] = [];
  for (const name of redact) {
    if (typeof name !== 'string') throw new TypeError('redact entries must be strings');
    const needle = normalizeName(name);
    if (needle !== '') needles.push(needle);
  }
  const isSecret = (key: string): boolean => {
    const normal = normalizeName(key);
    for (const needle of needles) if (normal.includes(needle)) return true;
    return false;
  };
  const { maxDepth, maxString, maxEntries } = limits;

  function clipString(s: string, budget: Budget): string {
    const out = clip(s, Math.min(maxString, Math.max(budget.left, 0))) as string;
    budget.left -= out.length + 2; // and its quotes
    return out;
  }

  function copy(value: unknown, depth: number, budget: Budget): unknown {
    if (budget.left <= 0) return TRUNCATED;
    switch (typeof value) {
      case 'string':
        return clipString(value, budget);
      case 'number':
      case 'boolean':
        budget.left -= 8;
        return value;
      case 'object':
        break;
      default:
        // undefined, bigint, function, symbol: not JSON; never in parsed input.
        return null;
    }
    if (value === null) {
      budget.left -= 4;
      return null;
    }
    if (isRawNumber(value)) {
      // A number kept as the client spelled it: logged as that spelling (a string, clipped).
      return clipString(rawNumberText(value), budget);
    }
    if (depth >= maxDepth) return TRUNCATED;
    budget.left -= 2;
    if (Array.isArray(value)) {
      const n = Math.min(value.length, maxEntries);
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) {
        if (budget.left <= 0) {
          out.push(TRUNCATED);
          return out;
        }
        out.push(copy(value[i], depth + 1, budget));
      }
      if (value.length > n) out.push(`[+${value.length - n} items]`);
      return out;
    }
    const out: Record<string, unknown> = {};
    let kept = 0;
    let total = 0;
    for (const key in value) {
      if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
      total++;
      if (kept >= maxEntries || budget.left <= 0) continue;
      kept++;
      // Cut at 128 characters; one holding a key or token is redacted (two such members in one
      // object are logged as one: the name is all that differs).
      const name = clip(key, 128) as string;
      budget.left -= name.length + 3;
      let item: unknown;
      if (isSecret(key)) {
        item = REDACTED;
        budget.left -= REDACTED.length + 2;
      } else {
        item = copy((value as Record<string, unknown>)[key], depth + 1, budget);
      }
      // JSON.parse makes "__proto__" an own key; a plain assignment would set the prototype instead.
      if (name === '__proto__')
        Object.defineProperty(out, name, { value: item, enumerable: true, writable: true });
      else out[name] = item;
    }
    if (total > kept) out[TRUNCATED] = `+${total - kept} keys`;
    return out;
  }

  return (value, budget) => copy(value, 0, budget);
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/[-_\s]/g, '');
}

/**
 * A small schema language for the config: each spec parses one value, reports every problem with
 * its path, and carries the text the README's config reference is generated from.
 */
import { parseDuration, parseSize } from './duration.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';

export interface Issue {
  readonly path: string;
  readonly message: string;
  readonly severity: 'error' | 'warning';
}

export interface Doc {
  readonly type: string;
  readonly description: string;
  readonly default?: string;
  readonly fields?: Readonly<Record<string, Spec<unknown>>>;
  readonly items?: Spec<unknown>;
}

export interface Spec<T> {
  /** Returns the parsed value, or undefined after pushing at least one error issue. */
  parse(value: unknown, path: string, issues: Issue[]): T | undefined;
  readonly doc: Doc;
  /** Value used when the field is absent (already parsed). */
  readonly fallback?: T;
  /** An optional mapping stays undefined when absent instead of taking its fields' defaults. */
  readonly optional?: boolean;
}

type Check<T> = (value: T) => string | undefined;

const fail = (issues: Issue[], path: string, message: string): undefined => {
  issues.push({ path, message, severity: 'error' });
  return undefined;
};

function leaf<T>(
  type: string,
  description: string,
  convert: (v: unknown) => T | undefined,
  expected: string,
  options: { default?: T; shown?: string; check?: Check<T> } = {},
): Spec<T> {
  const doc: Doc = {
    type,
    description,
    ...(options.default !== undefined ? { default: options.shown ?? String(options.default) } : {}),
  };
  return {
    doc,
    ...(options.default !== undefined ? { fallback: options.default } : {}),
    parse(value, path, issues) {
      const parsed = convert(value);
      if (parsed === undefined) return fail(issues, path, expected);
      const problem = options.check?.(parsed);
      if (problem) return fail(issues, path, problem);
      return parsed;
    },
  };
}

export const string = (description: string, options: { default?: string; check?: Check<string> } = {}) =>
  leaf<string>(
    'string',
    description,
    (v) => (typeof v === 'string' ? v : undefined),
    'must be a string',
    options,
  );

export const boolean = (description: string, options: { default?: boolean } = {}) =>
  leaf<boolean>(
    'boolean',
    description,
    (v) => (typeof v === 'boolean' ? v : undefined),
    'must be true or false',
    options,
  );

export const number = (
  description: string,
  options: { default?: number; min?: number; max?: number; integer?: boolean } = {},
) => {
  const { min, max, integer } = options;
  return leaf<number>(
    integer ? 'integer' : 'number',
    description,
    (v) => {
      const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
      return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
    },
    'must be a number',
    {
      ...(options.default !== undefined ? { default: options.default } : {}),
      check: (n) => {
        if (integer && !Number.isInteger(n)) return 'must be a whole number';
        if (min !== undefined && n < min) return `must be at least ${min}`;
        if (max !== undefined && n > max) return `must be at most ${max}`;
        return undefined;
      },
    },
  );
};

/**
 * The longest duration: Node's timers hold a signed 32-bit count of ms, and a longer one is run
 * after 1 ms instead (a `send_timeout: 600h` cut every client that paused for 1 ms).
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** `max`: the longest allowed for this setting, spelled as a duration (it is shown in the error). */
export const duration = (
  description: string,
  options: { default?: string; min?: number; max?: string } = {},
) => {
  const max = options.max === undefined ? undefined : (parseDuration(options.max) as number);
  return leaf<number>(
    'duration',
    description,
    parseDuration,
    'must be a duration such as 250ms, 30s, 5m or 1h',
    {
      ...(options.default !== undefined
        ? { default: parseDuration(options.default) as number, shown: options.default }
        : {}),
      check: (ms) => {
        if (options.min !== undefined && ms < options.min) return `must be at least ${options.min}ms`;
        if (max !== undefined && ms > max) return `must be at most ${options.max}`;
        if (ms > MAX_DURATION_MS)
          return `must be at most ${MAX_DURATION_MS}ms (about 596h, the longest timer Node can run)`;
        return undefined;
      },
    },
  );
};

export const size = (description: string, options: { default?: string } = {}) =>
  leaf<number>('size', description, parseSize, 'must be a size such as 4MiB, 512KiB or a number of bytes', {
    ...(options.default !== undefined
      ? { default: parseSize(options.default) as number, shown: options.default }
      : {}),
  });

export const oneOf = <const T extends string>(
  values: readonly T[],
  description: string,
  options: { default?: T } = {},
) =>
  leaf<T>(
    values.map((v) => `\`${v}\``).join(' \\| '),
    description,
    (v) => (typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : undefined),
    `must be one of: ${values.join(', ')}`,
    options,
  );

export function array<T>(
  items: Spec<T>,
  description: string,
  options: { default?: T[] } = {},
): Spec<readonly T[]> {
  return {
    doc: {
      type: `list of ${items.doc.type}`,
      description,
      items,
      ...(options.default ? { default: options.default.length ? options.default.join(', ') : '[]' } : {}),
    },
    ...(options.default ? { fallback: Object.freeze(options.default) } : {}),
    parse(value, path, issues) {
      if (!Array.isArray(value)) return fail(issues, path, 'must be a list');
      const before = issues.filter((i) => i.severity === 'error').length;
      const out = value.map((item, i) => items.parse(item, `${path}[${i}]`, issues));
      if (issues.filter((i) => i.severity === 'error').length > before) return undefined;
      return Object.freeze(out as T[]);
    },
  };
}

export function record<T>(values: Spec<T>, description: string): Spec<Readonly<Record<string, T>>> {
  return {
    doc: { type: `map of ${values.doc.type}`, description, default: '{}' },
    fallback: Object.freeze({}),
    parse(value, path, issues) {
      if (!isPlainObject(value)) return fail(issues, path, 'must be a mapping');
      const out: Record<string, T> = {};
      let ok = true;
      for (const [k, v] of Object.entries(value)) {
        const parsed = values.parse(v, `${path}.${k}`, issues);
        if (parsed === undefined) ok = false;
        else out[k] = parsed;
      }
      return ok ? Object.freeze(out) : undefined;
    },
  };
}

type Fields = Record<string, Spec<unknown>>;
type Parsed<F extends Fields> = { readonly [K in keyof F]: F[K] extends Spec<infer T> ? T : never };

/**
 * A mapping with known fields. Unknown fields are errors: a typo in a security config must not
 * silently disable a rule. Fields without a fallback are optional unless listed in `required`.
 */
export function object<F extends Fields>(
  fields: F,
  description: string,
  options: { required?: readonly (keyof F & string)[]; optional?: boolean } = {},
): Spec<Parsed<F>> {
  const required = new Set(options.required ?? []);
  const spec: Spec<Parsed<F>> = {
    doc: { type: 'mapping', description, fields },
    ...(options.optional ? { optional: true } : {}),
    parse(value, path, issues) {
      const at = (key: string) => (path ? `${path}.${key}` : key);
      if (value === undefined || value === null) value = {};
      if (!isPlainObject(value)) return fail(issues, path || '(root)', 'must be a mapping');
      let ok = true;
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(fields, key)) {
          ok = false;
          fail(issues, at(key), `unknown field (expected one of: ${Object.keys(fields).join(', ')})`);
        }
      }
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(fields)) {
        const raw = value[key];
        if (raw === undefined || raw === null) {
          if (required.has(key)) {
            ok = false;
            fail(issues, at(key), 'is required');
          } else if (field.fallback !== undefined) out[key] = field.fallback;
          else if (field.doc.type === 'mapping' && !field.optional)
            out[key] = field.parse({}, at(key), issues);
          continue;
        }
        const parsed = field.parse(raw, at(key), issues);
        if (parsed === undefined) ok = false;
        else out[key] = parsed;
      }
      return ok ? (Object.freeze(out) as Parsed<F>) : undefined;
    },
  };
  return spec;
}

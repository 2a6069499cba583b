/**
 * A message as its readers see it when nothing reads the arguments: `params` holding only the
 * members some rule reads, and `params._meta` only those of its members (jsonrpc/read-depth.ts).
 * The parse's fast paths leave the others' objects and arrays, and the arguments, out of the
 * parsed value, as placeholders (jsonrpc/unread-spans.ts); test/unit/pipeline/inspect-numbers.test.ts
 * holds every decision equal with and without them left out.
 */
import { META_READ, PARAMS_READ } from '../../src/jsonrpc/read-depth.ts';

export function readersView(m: unknown): unknown {
  const params = (m as { params?: unknown }).params;
  if (!isRecord(params)) return m;
  const rest = only(params, PARAMS_READ);
  delete rest.arguments;
  if (isRecord(rest._meta)) rest._meta = only(rest._meta, META_READ);
  return { ...(m as object), params: rest };
}

function only(o: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const key of Object.keys(o)) if (names.includes(key)) kept[key] = o[key];
  return kept;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

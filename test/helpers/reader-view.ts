/**
 * A message as its readers see it when nothing reads the arguments: without `params.arguments`
 * (the parse's fast paths leave them out of the parsed value, as placeholders).
 */
export function withoutArguments(m: unknown): unknown {
  const params = (m as { params?: unknown }).params;
  if (typeof params !== 'object' || params === null) return m;
  const rest: Record<string, unknown> = { ...(params as Record<string, unknown>) };
  delete rest.arguments;
  return { ...(m as object), params: rest };
}

/**
 * Per-target options of the A/B benches (ab.ts, steady.ts), given as `LABEL:...`: `--node-arg
 * LABEL:FLAG` for that target's node flags, `--env LABEL:NAME=VALUE` for its environment.
 */

/** The values in `list` given for `label`, without the `LABEL:` prefix. */
export function forLabel(list: readonly string[], label: string): string[] {
  return list.filter((a) => a.startsWith(`${label}:`)).map((a) => a.slice(label.length + 1));
}

/** `--env LABEL:NAME=VALUE` values for `label`, as an environment to add to that target's. */
export function envFor(list: readonly string[], label: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of forLabel(list, label)) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--env ${label}:${kv}: expected LABEL:NAME=VALUE`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

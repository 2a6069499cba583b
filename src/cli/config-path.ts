/**
 * Where the config is read from: --config, else $MCPGATE_CONFIG, else ./mcpgate.yaml; with none of
 * them (no flag, no variable, no ./mcpgate.yaml), the environment alone (`MCPGATE_<PATH>`).
 */
import { existsSync } from 'node:fs';
import type { CliIo } from './io.ts';

export const DEFAULT_CONFIG_PATH = './mcpgate.yaml';

/** How an environment-only config is named in messages. */
export const ENVIRONMENT_SOURCE = 'environment (MCPGATE_* variables)';

export function configPath(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string {
  return flag ?? (env.MCPGATE_CONFIG || DEFAULT_CONFIG_PATH);
}

/** The config file to read, or undefined for an environment-only config. */
export function configSource(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
  exists: (path: string) => boolean = existsSync,
): string | undefined {
  const explicit = flag ?? (env.MCPGATE_CONFIG || undefined);
  if (explicit !== undefined) return explicit;
  return exists(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined;
}

/**
 * Loads the config as `serve` and `validate` read it: from the source above, saying so on stderr
 * when there is neither a file nor any MCPGATE_* variable. The loader is imported here, when a
 * command runs, so `mcpgate --version` and `keygen` start fast.
 */
export async function loadFromSource(flag: string | undefined, io: CliIo) {
  const file = configSource(flag, io.env);
  const { loadConfigFrom, formatIssue, hasConfigVariables } = await import('../config/load.ts');
  if (file === undefined && !hasConfigVariables(io.env))
    io.stderr(
      `no config file (${DEFAULT_CONFIG_PATH} not found, no --config or MCPGATE_CONFIG) and no MCPGATE_* config variables\n`,
    );
  /** Reads the same source again (a reload). */
  const load = () => loadConfigFrom(file, io.env, io.now());
  const { config, issues } = await load();
  return { file, path: file ?? ENVIRONMENT_SOURCE, config, issues, formatIssue, load };
}

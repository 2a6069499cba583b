/**
 * Where the config is read from: --config, else $MCPGATE_CONFIG, else ./mcpgate.yaml; with none of
 * them (no flag, no variable, no ./mcpgate.yaml), the environment alone (`MCPGATE_<PATH>`).
 */
import { existsSync } from 'node:fs';

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

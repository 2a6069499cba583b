/** Where the config is read from: --config, else $MCPGATE_CONFIG, else ./mcpgate.yaml. */
export const DEFAULT_CONFIG_PATH = './mcpgate.yaml';

export function configPath(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): string {
  return flag ?? (env.MCPGATE_CONFIG || DEFAULT_CONFIG_PATH);
}

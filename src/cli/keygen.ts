/**
 * `mcpgate keygen --label NAME [--allow a,b] [--json]`: mints a key from the OS CSPRNG, prints it
 * once, and prints the config entry that holds only its hash. The key is written nowhere else.
 */
import type { Command } from 'commander';
import type { CliIo } from './io.ts';
import { KEY_RANDOM_BYTES, mintKey } from '../auth/key-format.ts';
import { formatKeyHash, sha256Hex } from '../auth/key-hash.ts';

const LABEL = /^[A-Za-z0-9._@-]{1,64}$/;

interface KeygenOptions {
  label: string;
  allow?: string;
  json?: boolean;
}

export function registerKeygen(program: Command, io: CliIo): void {
  program
    .command('keygen')
    .description('mint a new API key: prints it once, with the config entry that holds only its hash')
    .requiredOption(
      '--label <name>',
      'a unique name for the key, shown in the audit log (A-Z a-z 0-9 . _ @ -)',
    )
    .option('--allow <tools>', 'comma-separated tool names or wildcards the key may call (default: none)')
    .option('--json', 'print one JSON object {"label","key","hash"} instead')
    .action((options: KeygenOptions) => {
      if (!LABEL.test(options.label)) {
        io.stderr('keygen: --label must be 1-64 characters of A-Z a-z 0-9 . _ @ -\n');
        io.exit(1);
        return;
      }
      const allow = parseList(options.allow);
      if (allow === undefined) {
        io.stderr('keygen: --allow must be tool names separated by commas, without control characters\n');
        io.exit(1);
        return;
      }
      const key = mintKey(io.random(KEY_RANDOM_BYTES));
      const hash = formatKeyHash(sha256Hex(key));
      if (options.json) {
        io.stdout(JSON.stringify({ label: options.label, key, hash }) + '\n');
      } else {
        io.stdout(
          `New key for "${options.label}". It is shown once and mcpgate keeps only its hash:\n\n` +
            `    ${key}\n\n` +
            `Give it to the client now (e.g. a secret manager, or an env var read by the client).\n` +
            `Paste this under \`keys:\` in your mcpgate config:\n\n` +
            configSnippet(options.label, hash, allow),
        );
      }
      io.exit(0);
    });
}

/** The YAML entry for `keys:` (two-space indent). Scalars are JSON strings, which YAML reads as is. */
export function configSnippet(label: string, hash: string, allow: readonly string[]): string {
  const list = `[${allow.map((name) => JSON.stringify(name)).join(', ')}]`;
  const note = allow.length === 0 ? ' # nothing allowed yet: add tool names or "*"' : '';
  return `  - label: ${JSON.stringify(label)}\n    hash: ${JSON.stringify(hash)}\n    allow: ${list}${note}\n`;
}

/** "a, b,,c" -> ["a","b","c"] (deduplicated); undefined when a name holds a control character. */
function parseList(value: string | undefined): string[] | undefined {
  if (value === undefined) return [];
  const names = [...new Set(value.split(',').map((s) => s.trim()))].filter((s) => s.length > 0);
  // eslint-disable-next-line no-control-regex
  return names.some((name) => /[\x00-\x1f\x7f]/.test(name)) ? undefined : names;
}

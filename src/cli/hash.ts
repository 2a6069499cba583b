/**
 * `mcpgate hash`: reads one key on standard input and prints the `sha256:<hex>` to put in the
 * config. The key is read from stdin, never from an argument (arguments land in shell history and
 * in `ps`). Surrounding spaces and the trailing newline are removed, as HTTP does with header values.
 */
import type { Command } from 'commander';
import type { CliIo } from './io.ts';
import { MAX_KEY_LENGTH, hasValidChecksum, isVisibleAscii, looksLikeMintedKey } from '../auth/key-format.ts';
import { formatKeyHash, sha256Hex } from '../auth/key-hash.ts';

export function registerHash(program: Command, io: CliIo): void {
  program
    .command('hash')
    .description('print the hash of a key read on standard input (e.g. `mcpgate hash < key.txt`)')
    .action(async () => {
      const key = (await io.stdin()).replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
      if (key.length === 0) {
        io.stderr('hash: expected a key on standard input\n');
        io.exit(1);
        return;
      }
      if (key.length > MAX_KEY_LENGTH || !isVisibleAscii(key)) {
        // Never echo the input: it may be a real key pasted by mistake.
        io.stderr(
          `hash: the gateway refuses this key: one line of at most ${MAX_KEY_LENGTH} visible ASCII characters expected\n`,
        );
        io.exit(1);
        return;
      }
      if (looksLikeMintedKey(key) && !hasValidChecksum(key)) {
        io.stderr(
          'hash: warning: this mcpg_ key fails its checksum (mistyped or truncated?); the gateway will refuse it\n',
        );
      }
      io.stdout(formatKeyHash(sha256Hex(key)) + '\n');
      io.exit(0);
    });
}

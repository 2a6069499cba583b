/**
 * Commander's error messages quote the argument they refuse (`unknown option '--token=<value>'`,
 * `unknown command '<word>'`). A secret passed on the command line by mistake (a key after `=`, a
 * token as a word) was printed again, to a terminal or to a container's log, where the command line
 * itself is not written. So a quoted text is shown only when it is what the program's own words
 * look like (an allowlist; no credential check is loaded, so `--version` stays fast): an option's
 * name (its value after `=` is never shown), a command name, or the program's own flags.
 */

export const HIDDEN = '[not shown: it may be a secret]';

/** `-x`, `--some-option`. */
const OPTION = /^--?[A-Za-z][A-Za-z0-9-]*$/;
/** A command name, or a short lower-case word mistyped for one. */
const WORD = /^[a-z][a-z-]{0,23}$/;
/** The program's own option flags, quoted in its messages: `--label <name>`, `-c, --config <path>`. */
const FLAGS = /^-[-A-Za-z, ]* [<[][a-z:-]+[>\]](?:\.\.\.)?$/;

export function withoutSecrets(message: string): string {
  return message.replace(/'([^'\n]*)'/g, (quoted, text: string) => {
    if (OPTION.test(text) || WORD.test(text) || FLAGS.test(text)) return quoted;
    const eq = text.startsWith('-') ? text.indexOf('=') : -1;
    if (eq !== -1 && OPTION.test(text.slice(0, eq))) return `'${text.slice(0, eq + 1)}${HIDDEN}'`;
    return `'${HIDDEN}'`;
  });
}

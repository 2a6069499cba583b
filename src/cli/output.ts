/**
 * Commander's error messages quote the argument they refuse (`unknown option '--token=<value>'`,
 * `unknown command '<word>'`). A secret passed on the command line by mistake (a key after `=`, a
 * token as a word) was printed again, to a terminal or to a container's log, where the command line
 * itself is not written. So a quoted text is shown only when it is what the program's own words
 * look like (an allowlist; no credential check is loaded, so `--version` stays fast): an option's
 * name (its value after `=` is never shown), a command name, or the program's own flags.
 */

export const HIDDEN = '[not shown: it may be a secret]';

/**
 * `-x`, `--some-option`. A short option is one letter: what follows it in the same word is its
 * value (`-pPassw0rd`, as a MySQL client takes a password).
 */
const OPTION = /^(?:-[A-Za-z]|--[A-Za-z][A-Za-z0-9-]*)$/;
/** A command name, or a short lower-case word mistyped for one. */
const WORD = /^[a-z][a-z-]{0,23}$/;
/** The program's own option flags, quoted in its messages: `--label <name>`, `-c, --config <path>`. */
const FLAGS = /^-[-A-Za-z, ]* [<[][a-z:-]+[>\]](?:\.\.\.)?$/;

/** What a quoted text cannot be told by: a quote ends it early, a line break splits its line. */
const UNDELIMITED = /['\r\n]/;

/**
 * `args`: the command line as given. An argument holding a quote or a line break is hidden wherever
 * it is quoted before the quoted texts are read: its quotes and lines are not the message's, and
 * read as theirs, a piece before its first quote that looks like a word (`ab'mcpg_…`) was shown
 * with the rest after it, and a line break left both halves of it unquoted, shown whole.
 */
export function withoutSecrets(message: string, args: readonly string[] = []): string {
  let text = message;
  for (const arg of args)
    if (arg.length > 1 && UNDELIMITED.test(arg)) text = text.replaceAll(arg, hidden(arg));
  return text.split('\n').map(withoutSecretsIn).join('\n');
}

/**
 * One line, its quoted texts shown while they are the program's own words. From the first that is
 * not, to the line's last quote, nothing is shown: a refused argument may hold a quote itself
 * (`--password=it's`), and a quote inside it would end the quoted text early and show the rest.
 */
function withoutSecretsIn(line: string): string {
  let at = 0;
  for (;;) {
    const open = line.indexOf("'", at);
    const close = open === -1 ? -1 : line.indexOf("'", open + 1);
    if (close === -1) return line;
    const text = line.slice(open + 1, close);
    if (OPTION.test(text) || WORD.test(text) || FLAGS.test(text)) {
      at = close + 1;
      continue;
    }
    const last = line.lastIndexOf("'");
    return `${line.slice(0, open)}'${hidden(line.slice(open + 1, last))}'${line.slice(last + 1)}`;
  }
}

/** A refused argument as shown: an option's name, never its value (after `=`, or a short one's letter). */
function hidden(text: string): string {
  const eq = text.startsWith('--') ? text.indexOf('=') : -1;
  if (eq !== -1 && OPTION.test(text.slice(0, eq))) return `${text.slice(0, eq + 1)}${HIDDEN}`;
  if (/^-[A-Za-z]/.test(text) && !text.startsWith('--')) return `${text.slice(0, 2)}${HIDDEN}`;
  return HIDDEN;
}

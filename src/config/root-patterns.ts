/** The `roots` list of a key and of an OAuth claim grant (schema.ts, oauth-schema.ts). */
import { array, string } from './spec.ts';
import { resourcePatternProblem } from '../policy/resource-uri.ts';

/**
 * Root URI patterns (policy/roots.ts): what a client's answer to `roots/list` may name, in the
 * pattern language and with the spelling rule of `resources`.
 */
export const rootPatterns = (who: string) =>
  array(
    string('A root URI or a wildcard (`*`), as in `resources`.', { check: resourcePatternProblem }),
    `Roots ${who} may lend the upstream: the roots in a client's answer to \`roots/list\` (or, 2026-07-28, ` +
      `in a request's \`inputResponses\`) whose \`uri\` matches none are removed before the upstream gets it ` +
      '(deny by default: a roots-aware server may take the roots it is lent in place of its own directories).',
    { default: [] },
  );

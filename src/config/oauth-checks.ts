/**
 * Checks of `auth.oauth` that span fields: the resource identifier, and each grant's `when`. Like
 * checks.ts they read the raw tree, in the same pass as the schema; values of the wrong type are
 * left to the schema.
 */
import type { Issue } from './spec.ts';
import { isPlainObject } from '../jsonrpc/plain-object.ts';
import { rootPatternWarnings } from './root-patterns.ts';

export function oauthChecks(root: Record<string, unknown>, issues: Issue[]): void {
  const auth = isPlainObject(root.auth) ? root.auth : {};
  const oauth = auth.oauth;
  if (!isPlainObject(oauth)) return;
  const error = (path: string, message: string) => issues.push({ path, message, severity: 'error' });
  if (root.public_url === undefined || root.public_url === null)
    error('public_url', 'is required with auth.oauth (it is the resource identifier clients ask tokens for)');
  if (auth.allow_unauthenticated === true)
    error('auth.allow_unauthenticated', 'cannot be combined with auth.oauth');
  const grants = Array.isArray(oauth.grants) ? (oauth.grants as unknown[]) : [];
  const names = new Map<string, number>();
  grants.forEach((grant, i) => {
    if (!isPlainObject(grant)) return;
    rootPatternWarnings(grant.roots, `auth.oauth.grants[${i}].roots`, issues);
    if (isPlainObject(grant.when)) {
      const { claim, includes, scope } = grant.when;
      const at = `auth.oauth.grants[${i}].when`;
      if (scope !== undefined) {
        if (claim !== undefined || includes !== undefined)
          error(at, 'use either {scope} or {claim, includes}');
      } else if (claim === undefined || includes === undefined) {
        error(at, 'needs {scope: <scope>} or {claim: <name>, includes: <value>}');
      }
    }
    if (typeof grant.name !== 'string') return;
    const first = names.get(grant.name);
    if (first !== undefined)
      error(`auth.oauth.grants[${i}].name`, `duplicate name (also auth.oauth.grants[${first}])`);
    else names.set(grant.name, i);
  });
  if (oauth.grants === undefined || (Array.isArray(oauth.grants) && oauth.grants.length === 0))
    issues.push({
      path: 'auth.oauth.grants',
      message: 'no grants: every token may use nothing',
      severity: 'warning',
    });
}

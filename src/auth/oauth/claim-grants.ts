/**
 * `auth.oauth.grants`: what a token may use, by its claims. Compiled once at start; the first grant
 * whose `when` matches a token decides, and a token matching none may use nothing.
 *
 *   when: { claim: groups, includes: admins }   an array claim includes the value, or a string claim equals it
 *   when: { scope: mcp:tools }                  the space-delimited `scope`, or `scp` (array or string), includes it
 */
import type { GrantConfig } from '../../config/schema.ts';
import { compileGrants } from '../../policy/grants.ts';
import type { Grants } from '../../policy/grants.ts';

export interface ClaimGrant {
  /** The grant's `name`, or `grants[<index>]` (the audit line's `grant`). */
  readonly name: string;
  readonly grants: Grants;
  readonly config: GrantConfig;
  matches(payload: Readonly<Record<string, unknown>>): boolean;
}

/** Grants nothing: a token that matched no grant. */
export const NO_GRANTS: Grants = compileGrants({ allow: [], prompts: [], resources: [], roots: [] });

export function compileClaimGrants(list: readonly GrantConfig[]): readonly ClaimGrant[] {
  return Object.freeze(
    list.map((config, i) => {
      const { claim, includes, scope } = config.when;
      let matches: ClaimGrant['matches'];
      if (scope !== undefined) matches = (payload) => scopesOf(payload).includes(scope);
      else if (claim !== undefined && includes !== undefined)
        matches = (payload) => {
          const value = claimValue(payload, claim);
          if (typeof value === 'string') return value === includes;
          return Array.isArray(value) && value.includes(includes);
        };
      else throw new TypeError(`auth.oauth.grants[${i}].when: needs {scope} or {claim, includes}`);
      return Object.freeze({
        name: config.name ?? `grants[${i}]`,
        grants: compileGrants(config),
        config,
        matches,
      });
    }),
  );
}

/** The first matching grant, or undefined. */
export function matchGrant(
  grants: readonly ClaimGrant[],
  payload: Readonly<Record<string, unknown>>,
): ClaimGrant | undefined {
  for (const grant of grants) if (grant.matches(payload)) return grant;
  return undefined;
}

/** The token's scopes: `scope` (space-delimited, RFC 9068) and `scp` (array, or a string as Entra ID writes it). */
export function scopesOf(payload: Readonly<Record<string, unknown>>): readonly string[] {
  const out: string[] = [];
  const add = (value: unknown) => {
    if (typeof value === 'string') {
      for (const s of value.split(' ')) if (s !== '') out.push(s);
    } else if (Array.isArray(value)) {
      for (const s of value) if (typeof s === 'string') out.push(s);
    }
  };
  add(payload.scope);
  add(payload.scp);
  return out;
}

/** A claim by its top-level name, else by a dotted path (`realm_access.roles`). */
export function claimValue(payload: Readonly<Record<string, unknown>>, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  if (!name.includes('.')) return undefined;
  let value: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part))
      return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Claim grants: which grant a token's claims select, and the claim readers behind it. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  claimValue,
  compileClaimGrants,
  matchGrant,
  scopesOf,
} from '../../../../src/auth/oauth/claim-grants.ts';
import type { GrantConfig } from '../../../../src/config/schema.ts';

/** A grant as the config parser returns it (absent optional fields are left out). */
const grant = (when: Record<string, string>, allow: string[], name?: string) =>
  ({ ...(name ? { name } : {}), when, allow, prompts: [], resources: [] }) as unknown as GrantConfig;

describe('claim grants', () => {
  const grants = compileClaimGrants([
    grant({ claim: 'groups', includes: 'admins' }, ['*'], 'admins'),
    grant({ claim: 'realm_access.roles', includes: 'mcp-user' }, ['search']),
    grant({ claim: 'tier', includes: 'gold' }, ['gold_tool']),
    grant({ scope: 'mcp:tools' }, ['read_file']),
  ]);

  it('takes the first grant that matches', () => {
    const both = { groups: ['admins'], scope: 'mcp:tools' };
    assert.equal(matchGrant(grants, both)?.name, 'admins');
    assert.equal(matchGrant(grants, { scope: 'openid mcp:tools' })?.name, 'grants[3]');
  });

  it('matches an array claim by inclusion and a string claim by equality, never by substring', () => {
    assert.equal(matchGrant(grants, { tier: 'gold' })?.name, 'grants[2]');
    assert.equal(matchGrant(grants, { tier: 'golden' }), undefined);
    assert.equal(matchGrant(grants, { groups: 'administrators admins' }), undefined);
    assert.equal(matchGrant(grants, { groups: ['not-admins'] }), undefined);
  });

  it('reads a dotted path when there is no claim of that name', () => {
    assert.equal(matchGrant(grants, { realm_access: { roles: ['mcp-user'] } })?.name, 'grants[1]');
    assert.equal(
      claimValue({ 'https://x.example/groups': ['a'] }, 'https://x.example/groups')?.toString(),
      'a',
    );
    assert.equal(claimValue({ a: { b: 1 } }, 'a.c'), undefined);
    assert.equal(claimValue({ a: ['x'] }, 'a.length'), undefined);
  });

  it('reads scopes from `scope` and from `scp` as an array or a string', () => {
    assert.deepEqual(scopesOf({ scope: 'a  b' }), ['a', 'b']);
    assert.deepEqual(scopesOf({ scp: ['c', 1, 'd'] }), ['c', 'd']);
    assert.deepEqual(scopesOf({ scp: 'e f' }), ['e', 'f']);
    assert.equal(matchGrant(grants, { scp: ['mcp:tools'] })?.name, 'grants[3]');
    assert.equal(matchGrant(grants, { scope: 'mcp:tools:admin' }), undefined);
  });

  it('grants exactly the matched lists', () => {
    const matched = matchGrant(grants, { scope: 'mcp:tools' })!;
    assert.equal(matched.grants.tool('read_file'), true);
    assert.equal(matched.grants.tool('search'), false);
    assert.equal(matched.grants.prompt('anything'), false);
  });
});

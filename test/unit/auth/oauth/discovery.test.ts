/** Where discovery looks, and the credential form that routes a token to OAuth. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { discoveryUrls } from '../../../../src/auth/oauth/discovery.ts';
import { isJwtShaped } from '../../../../src/auth/credentials.ts';
import { mintKey } from '../../../../src/auth/key-format.ts';

describe('issuer discovery URLs', () => {
  it('tries OpenID Connect discovery, then RFC 8414 path-inserted', () => {
    assert.deepEqual(discoveryUrls('https://auth.example.com/realms/main'), [
      'https://auth.example.com/realms/main/.well-known/openid-configuration',
      'https://auth.example.com/.well-known/oauth-authorization-server/realms/main',
    ]);
    assert.deepEqual(discoveryUrls('https://tenant.auth0.com/'), [
      'https://tenant.auth0.com/.well-known/openid-configuration',
      'https://tenant.auth0.com/.well-known/oauth-authorization-server',
    ]);
  });
});

describe('credential form', () => {
  it('tells a JWT from an mcpgate key without decoding either', () => {
    assert.equal(isJwtShaped('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'), true);
    assert.equal(isJwtShaped('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'), true);
    assert.equal(isJwtShaped(mintKey(Buffer.alloc(32, 7))), false);
    assert.equal(isJwtShaped('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0'), false);
    assert.equal(isJwtShaped('eyJh.b.c.d.e'), false);
    assert.equal(isJwtShaped('abc.def.ghi'), false);
    assert.equal(isJwtShaped('eyJh+.b.c'), false);
  });
});

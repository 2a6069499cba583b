/**
 * What the audit keeps of a client-supplied value (audit/record.ts clip): clipped, and redacted
 * when it holds a key or a JWT, including a JWT the cut falls inside (its signature past the cut).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { clip } from '../../../src/audit/clip.ts';
import { MAX_NAME } from '../../../src/audit/record.ts';
import { REDACTED } from '../../../src/auth/user-agent.ts';
import { mintKey } from '../../../src/auth/key-format.ts';

const jwt = (claims: number) =>
  [
    Buffer.from('{"alg":"RS256","kid":"k1","typ":"at+jwt"}').toString('base64url'),
    Buffer.from(JSON.stringify({ sub: 'alice', pad: 'x'.repeat(claims) })).toString('base64url'),
    randomBytes(256).toString('base64url'),
  ].join('.');

it('passes ordinary values, clipped when long', () => {
  assert.equal(clip('tools/call', MAX_NAME), 'tools/call');
  assert.equal(clip('a'.repeat(300), MAX_NAME), `${'a'.repeat(MAX_NAME)}…`);
  assert.equal(
    clip(`${'read_file.'.repeat(40)}`, MAX_NAME),
    `${'read_file.'.repeat(40).slice(0, MAX_NAME)}…`,
  );
});

it('redacts a key or a whole JWT, alone or inside a value', () => {
  assert.equal(clip(mintKey(randomBytes(32)), MAX_NAME), REDACTED);
  assert.equal(clip(`https://files.example/a?access_token=${jwt(10)}`, 1024), REDACTED);
  assert.equal(clip(jwt(10), 1024), REDACTED);
});

it('redacts a JWT the cut falls inside: a 600-character bearer token as an id', () => {
  const token = jwt(400);
  assert.ok(token.length > 600);
  assert.equal(clip(token, MAX_NAME), REDACTED);
  assert.equal(clip(`Bearer ${token}`, MAX_NAME), REDACTED);
});

it('reads nothing past the cut: a crafted 16 KiB value is judged by its kept part', () => {
  // `ey` starts all the way (no dot in the part kept): not a token cut inside, and the decoding
  // the check does is bounded by the 256 characters kept.
  const crafted = 'ey'.repeat(8 * 1024) + '.a.b';
  assert.equal(clip(crafted, MAX_NAME), `${crafted.slice(0, MAX_NAME)}…`);
});

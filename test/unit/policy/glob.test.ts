import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileMatcher } from '../../../src/policy/glob.ts';

/** The obvious definition, by dynamic programming over (pattern position, name position). */
function reference(pattern: string, name: string): boolean {
  // UTF-16 code units, as the matcher works.
  const pu = pattern.split('');
  const su = name.split('');
  let row = new Array<boolean>(su.length + 1).fill(false);
  row[0] = true;
  for (const c of pu) {
    const next = new Array<boolean>(su.length + 1).fill(false);
    if (c === '*') {
      let any = false;
      for (let j = 0; j <= su.length; j++) {
        any = any || (row[j] as boolean);
        next[j] = any;
      }
    } else {
      for (let j = 1; j <= su.length; j++) next[j] = (row[j - 1] as boolean) && su[j - 1] === c;
    }
    row = next;
  }
  return row[su.length] as boolean;
}

const referenceAny = (patterns: readonly string[], name: string) => patterns.some((p) => reference(p, name));

/** Small alphabets make matches likely; regex metacharacters must be literal. */
const char = fc.constantFrom(
  'a',
  'b',
  '/',
  '.',
  '*',
  '+',
  '?',
  '(',
  ')',
  '[',
  ']',
  '\\',
  '^',
  '$',
  '|',
  '{',
  '}',
  '-',
  'é',
);
const nameChar = fc.constantFrom(
  'a',
  'b',
  '/',
  '.',
  '+',
  '?',
  '(',
  ')',
  '[',
  ']',
  '\\',
  '^',
  '$',
  '|',
  '{',
  '}',
  '-',
  'é',
  '\n',
);
const pattern = fc.array(char, { maxLength: 8 }).map((cs) => cs.join(''));
const name = fc.array(nameChar, { maxLength: 12 }).map((cs) => cs.join(''));

describe('compileMatcher', () => {
  it('matches exact names only exactly', () => {
    const m = compileMatcher(['echo', 'search']);
    assert.equal(m('echo'), true);
    assert.equal(m('search'), true);
    assert.equal(m('Echo'), false);
    assert.equal(m('echo '), false);
    assert.equal(m('ech'), false);
    assert.equal(m(''), false);
  });

  it('an empty list allows nothing', () => {
    const m = compileMatcher([]);
    assert.equal(m(''), false);
    assert.equal(m('anything'), false);
  });

  it('* matches any run of characters, including none and including /', () => {
    const m = compileMatcher(['search_*', 'file:///public/*']);
    assert.equal(m('search_'), true);
    assert.equal(m('search_web'), true);
    assert.equal(m('search'), false);
    assert.equal(m('xsearch_web'), false);
    assert.equal(m('file:///public/a/b/c.txt'), true);
    assert.equal(m('file:///private/a'), false);
    assert.equal(compileMatcher(['*'])('any/thing\nat all'), true);
    assert.equal(compileMatcher(['*'])(''), true);
    assert.equal(compileMatcher(['**'])('x'), true);
  });

  it('wildcards in the middle and at both ends', () => {
    const m = compileMatcher(['a*b*c', '*mid*']);
    assert.equal(m('abc'), true);
    assert.equal(m('a-b-b-c'), true);
    assert.equal(m('acb'), false);
    assert.equal(m('abcx'), false);
    assert.equal(m('xxmidxx'), true);
    assert.equal(m('mi'), false);
  });

  it('regex metacharacters in patterns are literal', () => {
    const m = compileMatcher(['a.b*', 'x+', '(y)', '[z]*', '^$|?', '\\d*', 'a/b-c{1}']);
    assert.equal(m('a.b'), true);
    assert.equal(m('axb'), false);
    assert.equal(m('x+'), true);
    assert.equal(m('xx'), false);
    assert.equal(m('(y)'), true);
    assert.equal(m('y'), false);
    assert.equal(m('[z]tail'), true);
    assert.equal(m('z'), false);
    assert.equal(m('^$|?'), true);
    assert.equal(m(''), false);
    assert.equal(m('\\d7'), true);
    assert.equal(m('7'), false);
    assert.equal(m('a/b-c{1}'), true);
    assert.equal(m('a/b-c'), false);
  });

  it('matches iff the naive reference says so (property)', () => {
    fc.assert(
      fc.property(fc.array(pattern, { maxLength: 4 }), name, (patterns, n) => {
        assert.equal(compileMatcher(patterns)(n), referenceAny(patterns, n));
      }),
      { numRuns: 3000 },
    );
  });

  it('names built from a pattern match it (property)', () => {
    // Replace each * with a random filler: the result must match.
    fc.assert(
      fc.property(pattern, fc.array(name, { minLength: 8, maxLength: 8 }), (p, fillers) => {
        let k = 0;
        const n = p.replace(/\*/g, () => fillers[k++ % fillers.length] as string);
        assert.equal(compileMatcher([p])(n), true);
      }),
      { numRuns: 1000 },
    );
  });

  it('stays linear on a pattern that makes backtracking regexes explode', () => {
    // With `.*` per star this is O(n^6); the atomic search answers at once.
    const m = compileMatcher(['*a*a*a*a*a*b']);
    assert.equal(m('a'.repeat(50_000)), false);
    assert.equal(m('a'.repeat(50_000) + 'b'), true);
  });

  it('refuses what is not a list of strings (programmer error)', () => {
    assert.throws(() => compileMatcher('x' as unknown as string[]), TypeError);
    assert.throws(() => compileMatcher([1 as unknown as string]), TypeError);
  });
});

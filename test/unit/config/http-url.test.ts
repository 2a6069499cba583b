/** The one URL check every URL in the config goes through. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { checkHttpUrl } from '../../../src/config/http-url.ts';

it('takes absolute http and https URLs and refuses other schemes, relative URLs and credentials', () => {
  assert.equal(checkHttpUrl('https://auth.example.com/realms/a'), undefined);
  assert.equal(checkHttpUrl('http://127.0.0.1:8080/mcp'), undefined);
  assert.equal(checkHttpUrl('ftp://example.com/'), 'must be an http or https URL');
  assert.equal(checkHttpUrl('/mcp'), 'must be an absolute http or https URL');
  assert.equal(checkHttpUrl('https://u:p@example.com/'), 'must not contain credentials');
  assert.equal(
    checkHttpUrl('https://u@example.com/', { credentials: 'use upstream.headers' }),
    'use upstream.headers',
  );
});

it('refuses a fragment, even an empty one, unless told it may have one', () => {
  assert.equal(checkHttpUrl('https://example.com/#x'), 'must not contain a fragment');
  assert.equal(checkHttpUrl('https://example.com/#'), 'must not contain a fragment');
  assert.equal(checkHttpUrl('https://example.com/#x', { fragment: true }), undefined);
});

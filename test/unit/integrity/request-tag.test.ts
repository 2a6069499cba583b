import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { callOf, createRequestTagger, readTagUnverified } from '../../../src/integrity/request-tag.ts';
import type { Plan } from '../../../src/integrity/request-tag.ts';
import type { JsonRpcId } from '../../../src/jsonrpc/message.ts';

const SECRET = Buffer.alloc(32, 7);
const tagger = createRequestTagger(SECRET);
const PLANS: Plan[] = [
  'none',
  { tool: 'echo' },
  { tool: 'a.b \u00e9 \ud83d\ude00' },
  { tool: '' },
  { tool: undefined },
  'tools',
  'prompts',
  'resources',
  'resourceTemplates',
  'tasks',
];
const IDS: JsonRpcId[] = [
  0,
  1,
  -42,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  '',
  '1',
  'list-1',
  'a.b.c',
  'g1tfake.sAA.AAAAAAAAAAAAAAAA',
  'héllo ✓ 𝄞',
  '\ud800 lone',
  '"quoted" \\ \n',
];

describe('request tags', () => {
  it('carry the client id (type and value exactly) and the plan back for the same principal', () => {
    for (const id of IDS) {
      for (const plan of PLANS) {
        const tag = tagger.tag('key-a', id, plan);
        // A task plan read back names the call its tag was made for (callOf): its answer settles it.
        const read = typeof plan === 'object' ? { ...plan, call: callOf(tag) } : plan;
        assert.deepEqual(
          tagger.untag('key-a', tag),
          { clientId: id, plan: read },
          `${JSON.stringify(id)} ${plan}`,
        );
        assert.equal(readTagUnverified(tag)?.clientId, id);
      }
    }
  });

  it('are fresh for every request, so two requests with the same client id never share one', () => {
    const tags = new Set<string>();
    for (let i = 0; i < 1000; i++) tags.add(tagger.tag('key-a', 1, 'none'));
    assert.equal(tags.size, 1000);
  });

  it('do not untag for another principal, another secret, or after any change', () => {
    const tag = tagger.tag('key-a', 'list-1', 'tools');
    assert.equal(tagger.untag('key-b', tag), undefined);
    assert.equal(createRequestTagger(Buffer.alloc(32, 8)).untag('key-a', tag), undefined);
    // A replica with the same secret untags it.
    assert.deepEqual(createRequestTagger(SECRET).untag('key-a', tag), { clientId: 'list-1', plan: 'tools' });
    for (let i = 0; i < tag.length; i++) {
      const changed = tag.slice(0, i) + (tag[i] === 'A' ? 'B' : 'A') + tag.slice(i + 1);
      assert.equal(tagger.untag('key-a', changed), undefined, `changed at ${i}`);
    }
    // Asking for no filtering instead of tools: the plan letter is signed too.
    assert.equal(tagger.untag('key-a', tag.replace(/^g1t/, 'g1n')), undefined);
  });

  it('are signed with HMAC-SHA256 as the format says, so tags from earlier builds still verify', () => {
    // tag = body + "." + base64url(HMAC-SHA256(k, bindingId "\n" body)[0..12]), k = HMAC(secret, label)
    const k = createHmac('sha256', SECRET).update('mcpgate request tag v1').digest();
    for (const id of IDS) {
      const tag = tagger.tag('key-a', id, 'tools');
      const dot = tag.lastIndexOf('.');
      const body = tag.slice(0, dot);
      const mac = createHmac('sha256', k).update('key-a').update('\n').update(body).digest();
      assert.equal(tag.slice(dot + 1), mac.subarray(0, 12).toString('base64url'), JSON.stringify(id));
      // A tag written by the reference computation untags.
      const reference = `${body}.${createHmac('sha256', k)
        .update('key-b\n' + body)
        .digest()
        .subarray(0, 12)
        .toString('base64url')}`;
      assert.deepEqual(tagger.untag('key-b', reference), { clientId: id, plan: 'tools' });
    }
  });

  it('do not untag another spelling of a valid MAC', () => {
    const tag = tagger.tag('key-a', 7, 'none');
    const dot = tag.lastIndexOf('.');
    // Each MAC character moved up by 256: the same low bytes, so a latin1 compare would see no change.
    const mac = [...tag.slice(dot + 1)].map((c) => String.fromCharCode(c.charCodeAt(0) + 0x100)).join('');
    assert.equal(tagger.untag('key-a', `${tag.slice(0, dot)}.${mac}`), undefined);
    assert.deepEqual(tagger.untag('key-a', tag), { clientId: 7, plan: 'none' });
  });

  it('untag nothing that is not a tag', () => {
    for (const id of [1, null, undefined, {}, '', 'list-1', 'g1', 'g1n.x.y', 'x'.repeat(20_000)]) {
      assert.equal(tagger.untag('key-a', id), undefined);
    }
  });

  it('refuse a weak secret', () => {
    assert.throws(() => createRequestTagger(Buffer.alloc(16)), TypeError);
  });
});

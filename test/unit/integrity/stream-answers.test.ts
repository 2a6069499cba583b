/**
 * StreamAnswers (src/integrity/response-ids.ts): a GET stream answers each request once, and
 * remembers at most MAX_STREAM_ANSWERED of them (an upstream cannot grow a stream that lives for days).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_STREAM_ANSWERED, StreamAnswers, signedIds } from '../../../src/integrity/response-ids.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';

describe('StreamAnswers', () => {
  it('takes a tag once, by its MAC', () => {
    const answers = new StreamAnswers();
    assert.equal(answers.first('g1abc.s.AAAAAAAAAAAAAAAA'), true);
    assert.equal(answers.first('g1abc.s.AAAAAAAAAAAAAAAA'), false);
    assert.equal(answers.first('g1abc.s.AAAAAAAAAAAAAAAB'), true);
  });

  it('forgets the oldest past MAX_STREAM_ANSWERED', () => {
    const answers = new StreamAnswers();
    const tag = (i: number) => `t.${String(i).padStart(16, '0')}`;
    for (let i = 0; i <= MAX_STREAM_ANSWERED; i++) assert.equal(answers.first(tag(i)), true);
    // The first was pushed out (a repeat that far apart passes); the last is still held.
    assert.equal(answers.first(tag(0)), true);
    assert.equal(answers.first(tag(MAX_STREAM_ANSWERED)), false);
  });

  it('a stream without a session answers a signed tag once, and names it as often as asked', () => {
    const tagger = createRequestTagger(Buffer.alloc(32, 7));
    const tag = tagger.tag('k:a', 5, 'none');
    const ids = signedIds(tagger, 'k:a');
    assert.notEqual(ids.answer(tag), undefined);
    assert.equal(ids.answer(tag), undefined);
    assert.notEqual(ids.name(tag), undefined);
    assert.notEqual(ids.name(tag), undefined);
  });
});

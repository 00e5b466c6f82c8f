import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generationParametersOf } from '../../../../src/domain/generation/generation-parameters.js';
import { IncrementalDetokenizer } from '../../../../src/domain/generation/incremental-detokenizer.js';
import { StopStringMatcher } from '../../../../src/domain/generation/stop-strings.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

const DEFAULTS = { maxTokens: 16, seed: 5 };

describe('generationParametersOf', () => {
  it('takes the snake_case names, with the defaults for what is absent or null', () => {
    assert.deepEqual(generationParametersOf({}, DEFAULTS), { maxTokens: 16, sampling: { temperature: 1, topK: 0, topP: 1, seed: 5 }, stop: [], priority: undefined, timeoutMicros: undefined, ignoreEos: undefined });
    const full = generationParametersOf({ max_tokens: 3, temperature: 0, top_p: 0.5, top_k: 4, seed: 9, stop: 'x', priority: 2, timeout: 1000, ignore_eos: true, max_completion_tokens: null, n: null }, DEFAULTS);
    assert.deepEqual(full, { maxTokens: 3, sampling: { temperature: 0, topK: 4, topP: 0.5, seed: 9 }, stop: ['x'], priority: 2, timeoutMicros: 1000, ignoreEos: true });
    assert.equal(generationParametersOf({ temperature: null }, DEFAULTS).sampling.temperature, 1);
  });

  it('refuses wrong types and out-of-range values, naming the parameter', () => {
    assertDomainError(() => generationParametersOf({ max_tokens: 0 }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'max_tokens'", 'from 1');
    assertDomainError(() => generationParametersOf({ max_tokens: 2.5 }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'max_tokens'");
    assertDomainError(() => generationParametersOf({ temperature: '1' }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'temperature'");
    assertDomainError(() => generationParametersOf({ top_p: 0 }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'top_p'", '(0, 1]');
    assertDomainError(() => generationParametersOf({ top_k: -1 }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'top_k'");
    assertDomainError(() => generationParametersOf({ seed: 2 ** 40 }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'seed'");
    assertDomainError(() => generationParametersOf({ stop: Array.from({ length: 17 }, () => 'x') }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'stop'", 'at most 16');
    assertDomainError(() => generationParametersOf({ stop: ['x'.repeat(257)] }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'stop'");
    assertDomainError(() => generationParametersOf({ ignore_eos: 'yes' }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'ignore_eos'", 'true or false');
    assertDomainError(() => generationParametersOf({ stop: [''] }, DEFAULTS), 'INFERENCE.INVALID_REQUEST', "'stop'", 'non-empty');
  });
});

describe('IncrementalDetokenizer', () => {
  it("sends a token's text only once its context decides it (a decoder that merges pieces)", () => {
    // A SentencePiece-like decoder: '▁' is a space, dropped at the start of the text.
    const pieces = ['▁Hel', 'lo', '▁wor', 'ld'];
    const decoder = { decode: (ids: readonly number[]) => ids.map((id) => pieces[id]).join('').replaceAll('▁', ' ').replace(/^ /, '') };
    const detokenizer = new IncrementalDetokenizer(decoder);
    const texts = [0, 1, 2, 3].map((id) => detokenizer.push(id));
    assert.equal(texts.join(''), 'Hello world', 'the space before "wor" is kept, though decoding it alone would drop it');
    assert.equal(detokenizer.flush(), '');
  });

  it('flushes an incomplete character at the end as U+FFFD', () => {
    const decoder = { decode: (ids: readonly number[]) => new TextDecoder().decode(Uint8Array.from(ids)) };
    const detokenizer = new IncrementalDetokenizer(decoder);
    assert.equal(detokenizer.push(0x61), 'a');
    assert.equal(detokenizer.push(0xe2), '');
    assert.equal(detokenizer.flush(), '\uFFFD');
  });
});

describe('StopStringMatcher', () => {
  it('finds the earliest stop string, across pieces, and holds back only what may begin one', () => {
    const matcher = new StopStringMatcher(['END', 'xy']);
    assert.deepEqual(matcher.feed('abc E'), { text: 'abc ', stopped: false });
    assert.deepEqual(matcher.feed('Nx'), { text: 'EN', stopped: false }, "'ENx' can no longer become 'END'; 'x' may begin 'xy'");
    assert.deepEqual(matcher.feed('yD'), { text: '', stopped: true });
    assert.equal(matcher.flush(), '');
  });
});

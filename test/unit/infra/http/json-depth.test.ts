import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertJsonDepthWithin } from '../../../../src/infra/http/json-depth.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('assertJsonDepthWithin', () => {
  it('takes JSON nested exactly to the limit, arrays and objects alike', () => {
    assert.doesNotThrow(() => assertJsonDepthWithin(bytes(`${'['.repeat(3)}1${']'.repeat(3)}`), 3));
    assert.doesNotThrow(() => assertJsonDepthWithin(bytes('{"a":[{"b":1}]}'), 3));
    assert.doesNotThrow(() => assertJsonDepthWithin(bytes('[[1],[2],[3],{"a":[4]}]'), 3), 'siblings do not add up');
  });

  it('refuses one level more, naming the limit and where it was passed', () => {
    assertDomainError(() => assertJsonDepthWithin(bytes('{"a":[{"b":[1]}]}'), 3), 'INFERENCE.INVALID_REQUEST', 'MAX_JSON_DEPTH (3 levels)', 'at byte 11');
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    assert.doesNotThrow(() => assertJsonDepthWithin(bytes(`["${'[{'.repeat(50)}", "\\"[[[[", "\\\\"]`), 2));
    assertDomainError(() => assertJsonDepthWithin(bytes('["\\\\", [[1]]]'), 2), 'INFERENCE.INVALID_REQUEST', 'MAX_JSON_DEPTH (2 levels)');
  });
});

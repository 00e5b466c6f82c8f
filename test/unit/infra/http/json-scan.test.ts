import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scanJson } from '../../../../src/infra/http/json-scan.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('scanJson: depth', () => {
  it('takes JSON nested exactly to the limit, arrays and objects alike', () => {
    assert.doesNotThrow(() => scanJson(bytes(`${'['.repeat(3)}1${']'.repeat(3)}`), 3));
    assert.doesNotThrow(() => scanJson(bytes('{"a":[{"b":1}]}'), 3));
    assert.doesNotThrow(() => scanJson(bytes('[[1],[2],[3],{"a":[4]}]'), 3), 'siblings do not add up');
  });

  it('refuses one level more, naming the limit and where it was passed', () => {
    assertDomainError(() => scanJson(bytes('{"a":[{"b":[1]}]}'), 3), 'INFERENCE.INVALID_REQUEST', 'MAX_JSON_DEPTH (3 levels)', 'at byte 11');
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    assert.doesNotThrow(() => scanJson(bytes(`["${'[{'.repeat(50)}", "\\"[[[[", "\\\\"]`), 2));
    assertDomainError(() => scanJson(bytes('["\\\\", [[1]]]'), 2), 'INFERENCE.INVALID_REQUEST', 'MAX_JSON_DEPTH (2 levels)');
  });
});

describe('scanJson: whether JSON.parse reads the text as sent', () => {
  const needsExactParse = (text: string) => scanJson(bytes(text), 64).needsExactParse;

  it('is false for the common body: short integers, floats with long fractions and exponents, words in strings', () => {
    assert.equal(needsExactParse('{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[0.30000000000000004,-1.2345678901234567e-300,999999999999999]}]}'), false);
    assert.equal(needsExactParse('[123456789012345, -123456789012345, 1.23456789012345678901234, 1e1234567890123456789, 5E+12345678901234567]'), false);
    assert.equal(needsExactParse('["NaN", "Infinity", "-Infinity", "12345678901234567890"]'), false);
  });

  it('is true for an integer of 16 digits or more, the first a double may round, signed or not', () => {
    assert.equal(needsExactParse('[9007199254740993]'), true);
    assert.equal(needsExactParse('[1,-9223372036854775808]'), true);
    assert.equal(needsExactParse('{"a":1000000000000000}'), true, '10^15 has 16 digits');
    assert.equal(needsExactParse('[12345678901234567.5]'), true, 'the integer part decides');
  });

  it('is true for the bare NaN, Infinity and -Infinity rapidjson writes', () => {
    assert.equal(needsExactParse('[NaN]'), true);
    assert.equal(needsExactParse('[1, Infinity]'), true);
    assert.equal(needsExactParse('[-Infinity]'), true);
  });
});

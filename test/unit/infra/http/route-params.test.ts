import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TIMEOUT_HEADER, parseTimeoutHeader } from '../../../../src/infra/http/route-params.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

describe('parseTimeoutHeader', () => {
  it(`reads the header ${TIMEOUT_HEADER}`, () => {
    assert.equal(TIMEOUT_HEADER, 'x-timeout-ms');
  });

  it('reads no timeout when the header is absent', () => {
    assert.equal(parseTimeoutHeader({}), undefined);
    assert.equal(parseTimeoutHeader({ 'x-other': '5' }), undefined);
  });

  it('turns milliseconds into microseconds', () => {
    assert.equal(parseTimeoutHeader({ 'x-timeout-ms': '250' }), 250_000);
    assert.equal(parseTimeoutHeader({ 'x-timeout-ms': '0' }), 0);
    assert.equal(parseTimeoutHeader({ 'x-timeout-ms': '999999999999' }), 999_999_999_999_000);
  });

  it('ignores spaces around the number', () => {
    assert.equal(parseTimeoutHeader({ 'x-timeout-ms': ' 30 ' }), 30_000);
  });

  for (const value of ['', '-5', '1.5', '10ms', 'soon', '1000000000000']) {
    it(`refuses ${JSON.stringify(value)}, naming the header and the value`, () => {
      assertDomainError(() => parseTimeoutHeader({ 'x-timeout-ms': value }), 'INFERENCE.INVALID_REQUEST', 'x-timeout-ms', JSON.stringify(value), 'milliseconds');
    });
  }

  it('refuses the header given twice', () => {
    assertDomainError(() => parseTimeoutHeader({ 'x-timeout-ms': ['5', '10'] }), 'INFERENCE.INVALID_REQUEST', 'x-timeout-ms', '["5","10"]');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { requestedVersion } from '../../../../src/domain/registry/model-name.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

describe('requestedVersion', () => {
  it('reads no version from an absent or empty segment', () => {
    assert.equal(requestedVersion(undefined), undefined);
    assert.equal(requestedVersion(''), undefined);
  });

  it('reads a positive integer', () => {
    assert.equal(requestedVersion('1'), 1);
    assert.equal(requestedVersion('42'), 42);
    assert.equal(requestedVersion('1234567890123456'), 1234567890123456);
  });

  for (const segment of ['0', '01', '-1', '1.5', '1e3', 'latest', ' 1', '12345678901234567']) {
    it(`refuses '${segment}', naming it`, () => {
      assertDomainError(() => requestedVersion(segment), 'INFERENCE.INVALID_REQUEST', `model version '${segment}'`, 'not a positive integer');
    });
  }
});


import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_VERSION_POLICY, selectVersions } from '../../../../src/domain/registry/version-policy.js';

const present = [1, 3, 2, 5];

describe('selectVersions', () => {
  it('latest(n) keeps the n highest versions, highest first', () => {
    assert.deepEqual(selectVersions({ kind: 'latest', numVersions: 2 }, present), [5, 3]);
  });

  it('latest(n) keeps every version when fewer than n are present', () => {
    assert.deepEqual(selectVersions({ kind: 'latest', numVersions: 10 }, present), [5, 3, 2, 1]);
  });

  it('the default policy serves only the latest version', () => {
    assert.deepEqual(selectVersions(DEFAULT_VERSION_POLICY, present), [5]);
  });

  it('all keeps every version, highest first', () => {
    assert.deepEqual(selectVersions({ kind: 'all' }, present), [5, 3, 2, 1]);
  });

  it('specific keeps the listed versions that are present, highest first', () => {
    assert.deepEqual(selectVersions({ kind: 'specific', versions: [1, 5, 7] }, present), [5, 1]);
  });

  it('selects nothing from an empty repository', () => {
    assert.deepEqual(selectVersions({ kind: 'all' }, []), []);
  });

  it('leaves the list it was given untouched', () => {
    const available = [1, 3, 2];
    selectVersions({ kind: 'all' }, available);
    assert.deepEqual(available, [1, 3, 2]);
  });
});

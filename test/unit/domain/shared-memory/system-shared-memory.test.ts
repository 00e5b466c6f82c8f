import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkLimits, checkRegionName, checkRegistration, checkSliceWithin, sharedMemoryFileName } from '../../../../src/domain/shared-memory/system-shared-memory.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

describe('shared memory rules', () => {
  describe('sharedMemoryFileName', () => {
    it("takes shm_open's names, with or without the leading '/'", () => {
      assert.equal(sharedMemoryFileName('r', '/input_simple'), 'input_simple');
      assert.equal(sharedMemoryFileName('r', 'output-0.data@v1+x=y'), 'output-0.data@v1+x=y');
    });

    for (const key of ['', '/', '.', '/.', '..', '/..', 'a..b', '/a/b', 'a/b', '//a', '../a', 'a\u0000', 'a b', 'a\\b', 'é', 'x'.repeat(256)]) {
      it(`refuses ${JSON.stringify(key.slice(0, 20))}`, () => {
        assertDomainError(() => sharedMemoryFileName('region_1', key), 'SHARED_MEMORY.INVALID_REGION', "region 'region_1'", 'key');
      });
    }
  });

  it('checks region names: 1 to 256 characters, no control characters', () => {
    assert.equal(checkRegionName('output data'), 'output data');
    for (const name of ['', 'x'.repeat(257), 'a\nb', 'a\u007f']) assertDomainError(() => checkRegionName(name), 'SHARED_MEMORY.INVALID_REGION', 'region name');
  });

  it('checks a registration against the size of its object', () => {
    checkRegistration('r', 8, 8, 16, '/k');
    assertDomainError(() => checkRegistration('r', 9, 8, 16, '/k'), 'SHARED_MEMORY.INVALID_REGION', "'r'", 'offset 9 + byte_size 8', "16 bytes of the shared memory object '/k'");
    assertDomainError(() => checkRegistration('r', 0, 0, 16, '/k'), 'SHARED_MEMORY.INVALID_REGION', 'byte_size is 0');
    assertDomainError(() => checkRegistration('r', -1, 4, 16, '/k'), 'SHARED_MEMORY.INVALID_REGION', 'offset is -1');
    assertDomainError(() => checkRegistration('r', 0, 2 ** 60, Number.MAX_SAFE_INTEGER, '/k'), 'SHARED_MEMORY.INVALID_REGION', 'byte_size');
  });

  it('checks a slice against its region, naming the tensor and the region', () => {
    checkSliceWithin({ region: 'r', offset: 8, byteSize: 8 }, 16, "input 'x'");
    checkSliceWithin({ region: 'r', offset: 16, byteSize: 0 }, 16, "input 'x'");
    assertDomainError(() => checkSliceWithin({ region: 'r', offset: 12, byteSize: 8 }, 16, "input 'x'"), 'SHARED_MEMORY.INVALID_REGION', "input 'x'", "region 'r' has 16 bytes", 'offset 12', 'byte_size 8');
    assertDomainError(() => checkSliceWithin({ region: 'r', offset: 1.5, byteSize: 8 }, 16, "output 'y'"), 'SHARED_MEMORY.INVALID_REGION', "output 'y'", 'shared_memory_offset is 1.5');
  });

  it('bounds the number of regions and the bytes they span', () => {
    const limits = { maxRegions: 2, maxTotalBytes: 100 };
    checkLimits('r', 50, { count: 1, bytes: 50 }, limits);
    assertDomainError(() => checkLimits('r', 1, { count: 2, bytes: 2 }, limits), 'SHARED_MEMORY.LIMIT_EXCEEDED', "'r'", 'SHARED_MEMORY_MAX_REGIONS');
    assertDomainError(() => checkLimits('r', 51, { count: 1, bytes: 50 }, limits), 'SHARED_MEMORY.LIMIT_EXCEEDED', "'r'", 'SHARED_MEMORY_MAX_BYTES');
  });
});

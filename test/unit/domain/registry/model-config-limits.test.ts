import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeclaredModelConfig } from '../../../../src/domain/registry/model-config.js';
import { defaultIntraOpThreads, ModelConfigLimits } from '../../../../src/domain/registry/model-config-limits.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

/** A host of 2 CPUs allowing 4 threads per model, requests of 64 KiB and answers of 1 MiB. */
const limits = new ModelConfigLimits({ maxThreads: 4, cpuQuota: 2, maxRequestBytes: 64 * 1024, maxResponseBytes: 1024 * 1024 });
const refused = (declared: DeclaredModelConfig, ...mentions: string[]) => assertDomainError(() => limits.check(declared), 'REGISTRY.INVALID_CONFIG', ...mentions);

describe('ModelConfigLimits', () => {
  it('takes a configuration within every limit, and one that declares nothing', () => {
    limits.check({});
    limits.check({ instanceCount: 4, intraOpThreads: 1, interOpThreads: 4, allowSpinning: true });
    limits.check({ instanceCount: 2, intraOpThreads: 2 });
    limits.check({ inputs: [{ name: 'x', datatype: 'FP32', dims: [-1, 16384] }], outputs: [{ name: 'y', datatype: 'BYTES', dims: [262144] }] });
  });

  describe('threads, bounded by MAX_MODEL_THREADS (twice the CPU quota by default)', () => {
    it('refuses more instances than the limit, naming the field and the bound', () => {
      refused({ instanceCount: 64, intraOpThreads: 1 }, 'instance_group.count 64', 'the 4 threads a model may use', 'MAX_MODEL_THREADS', 'CPU quota of 2');
    });

    it('refuses an intra-op or inter-op thread count above the limit', () => {
      refused({ intraOpThreads: 256 }, 'parameters.intra_op_thread_count 256', 'MAX_MODEL_THREADS');
      refused({ interOpThreads: 256 }, 'parameters.inter_op_thread_count 256', 'MAX_MODEL_THREADS');
    });

    it('refuses instances × intra-op threads above the limit, counting the default intra-op threads', () => {
      refused({ instanceCount: 3, intraOpThreads: 2 }, 'instance_group.count 3 × parameters.intra_op_thread_count 2 = 6 threads', 'MAX_MODEL_THREADS');
      // The default shares the quota: 3 instances of 1 thread each fit 4.
      limits.check({ instanceCount: 3 });
      assert.equal(defaultIntraOpThreads(2, 3), 1);
      assert.equal(defaultIntraOpThreads(8, 3), 2);
    });
  });

  describe('dims: one row (a variable dim counted as 1) within the request or answer limit', () => {
    it('refuses an input dim whose elements could never fit MAX_REQUEST_BYTES', () => {
      refused({ inputs: [{ name: 'x', datatype: 'FP32', dims: [50_000_000, 4] }] }, "input 'x' dims [50000000,4]", 'dim 50000000', '16384 FP32 elements', 'MAX_REQUEST_BYTES');
    });

    it('refuses dims whose product is past the limit though each dim fits', () => {
      refused({ inputs: [{ name: 'x', datatype: 'FP64', dims: [100, 100] }] }, "input 'x' dims [100,100]", 'one row holds more than the 8192 FP64 elements');
    });

    it('counts a BYTES element as the 4 bytes of its length', () => {
      refused({ inputs: [{ name: 's', datatype: 'BYTES', dims: [1, 200_000_000] }] }, "input 's'", 'dim 200000000', '16384 BYTES elements (of 4 bytes)');
      limits.check({ inputs: [{ name: 's', datatype: 'BYTES', dims: [1, 16384] }] });
    });

    it('bounds outputs by MAX_RESPONSE_BYTES', () => {
      refused({ outputs: [{ name: 'y', datatype: 'FP32', dims: [-1, 1024, 1024] }] }, "output 'y'", 'MAX_RESPONSE_BYTES (1048576 bytes)');
    });

    it('refuses a huge dim beside a zero dim', () => {
      refused({ inputs: [{ name: 'x', datatype: 'UINT8', dims: [0, 1e15] }] }, 'dim 1000000000000000');
    });
  });
});

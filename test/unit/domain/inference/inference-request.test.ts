import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { schedulingParametersOf, validateInferenceRequest, type InferenceRequest, type ParameterValue } from '../../../../src/domain/inference/inference-request.js';
import type { ModelSignature, Tensor } from '../../../../src/domain/inference/tensor.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { aTensor, spec } from '../../support/tensors.js';

const MAX_BATCH_SIZE = 8;

/** A batching model: an image [batch,3,2] and a per-item scale [batch,1]; two outputs. */
const signature: ModelSignature = {
  inputs: [spec('image', 'FP32', [-1, 3, 2]), spec('scale', 'FP32', [-1, 1])],
  outputs: [spec('logits', 'FP32', [-1, 4]), spec('label', 'INT64', [-1])],
};

const image = (shape: number[] = [1, 3, 2], elements?: number) => aTensor('image', 'FP32', shape, elements);
const scale = (shape: number[] = [1, 1]) => aTensor('scale', 'FP32', shape);

function request(inputs: Tensor[], requestedOutputs: string[] = []): InferenceRequest {
  return { parameters: {}, inputs, requestedOutputs };
}

function validate(inputs: Tensor[], requestedOutputs: string[] = []): string[] {
  return validateInferenceRequest(request(inputs, requestedOutputs), signature, MAX_BATCH_SIZE);
}

describe('validateInferenceRequest', () => {
  describe('a valid request', () => {
    it('computes every output, in the model order, when none is requested', () => {
      assert.deepEqual(validate([image(), scale()]), ['logits', 'label']);
    });

    it('computes only the requested outputs, in the requested order', () => {
      assert.deepEqual(validate([image(), scale()], ['label']), ['label']);
      assert.deepEqual(validate([scale(), image()], ['label', 'logits']), ['label', 'logits']);
    });

    it('accepts any batch size from 1 to max_batch_size, the same on every input', () => {
      assert.deepEqual(validate([image([MAX_BATCH_SIZE, 3, 2]), scale([MAX_BATCH_SIZE, 1])]), ['logits', 'label']);
    });
  });

  describe('inputs', () => {
    it('refuses an unknown input, naming it and the inputs the model has', () => {
      assertDomainError(
        () => validate([image(), scale(), aTensor('mask', 'FP32', [1, 1])]),
        'INFERENCE.INVALID_INPUT',
        "unknown input 'mask'",
        "'image', 'scale'",
      );
    });

    it('refuses an input given twice', () => {
      assertDomainError(() => validate([image(), image(), scale()]), 'INFERENCE.INVALID_INPUT', "input 'image'", 'more than once');
    });

    it('refuses a request missing an input, naming the missing one and the expected ones', () => {
      assertDomainError(() => validate([image()]), 'INFERENCE.INVALID_INPUT', "missing input 'scale'", "expects 'image', 'scale'");
    });

    it('refuses a datatype other than the declared one, naming both', () => {
      assertDomainError(
        () => validate([aTensor('image', 'FP64', [1, 3, 2]), scale()]),
        'INFERENCE.INVALID_DATATYPE',
        "input 'image'",
        'datatype FP64',
        'expected FP32',
      );
    });
  });

  describe('shapes', () => {
    it('refuses a rank other than the declared one, naming the expected shape', () => {
      assertDomainError(() => validate([image([1, 6]), scale()]), 'INFERENCE.INVALID_SHAPE', "input 'image'", 'expected [-1,3,2] (rank 3)');
    });

    it('refuses a fixed dimension of another size, naming the axis and its size', () => {
      assertDomainError(() => validate([image([1, 2, 3]), scale()]), 'INFERENCE.INVALID_SHAPE', "input 'image'", 'expected [-1,3,2]', 'axis 1 must be 3');
    });

    it('refuses a negative dimension', () => {
      assertDomainError(() => validate([image([1, 3, -2], 0), scale()]), 'INFERENCE.INVALID_SHAPE', "input 'image'", 'invalid dimension -2 at axis 2');
    });

    it('refuses a dimension that is not an integer', () => {
      assertDomainError(() => validate([image([1.5, 3, 2], 9), scale()]), 'INFERENCE.INVALID_SHAPE', "input 'image'", 'invalid dimension 1.5 at axis 0');
    });

    it('refuses a batch size of 0', () => {
      assertDomainError(() => validate([image([0, 3, 2]), scale([0, 1])]), 'INFERENCE.INVALID_SHAPE', "input 'image'", 'batch size 0', 'expected 1 to 8');
    });

    it('refuses a batch size above max_batch_size', () => {
      assertDomainError(
        () => validate([image([MAX_BATCH_SIZE + 1, 3, 2]), scale([MAX_BATCH_SIZE + 1, 1])]),
        'INFERENCE.INVALID_SHAPE',
        "input 'image'",
        'batch size 9',
        'expected 1 to 8',
        'max_batch_size',
      );
    });

    it('refuses inputs that disagree on the batch size, naming both', () => {
      assertDomainError(() => validate([image([2, 3, 2]), scale([3, 1])]), 'INFERENCE.INVALID_SHAPE', "'image' has 2", "'scale' has 3");
    });

    it('refuses a shape whose element count overflows', () => {
      const anyShape: ModelSignature = { inputs: [spec('x', 'FP32', [-1, -1, -1])], outputs: [spec('y', 'FP32', [-1])] };
      const huge = aTensor('x', 'FP32', [1, 2 ** 40, 2 ** 40], 0);
      assertDomainError(
        () => validateInferenceRequest(request([huge]), anyShape, MAX_BATCH_SIZE),
        'INFERENCE.INVALID_SHAPE',
        "input 'x'",
        `[1,${2 ** 40},${2 ** 40}]`,
        'overflows',
      );
    });
  });

  describe('a model without batching (max_batch_size 0)', () => {
    const unbatched: ModelSignature = {
      inputs: [spec('a', 'INT64', [-1]), spec('b', 'INT64', [-1])],
      outputs: [spec('sum', 'INT64', [-1])],
    };
    const validateUnbatched = (inputs: Tensor[]) => validateInferenceRequest(request(inputs), unbatched, 0);

    it('puts no bound on the first dimension and lets inputs differ in it', () => {
      assert.deepEqual(validateUnbatched([aTensor('a', 'INT64', [100]), aTensor('b', 'INT64', [0])]), ['sum']);
    });

    it('still refuses a shape whose element count overflows', () => {
      const twoDims: ModelSignature = { inputs: [spec('x', 'FP32', [-1, -1])], outputs: [spec('y', 'FP32', [-1])] };
      assertDomainError(
        () => validateInferenceRequest(request([aTensor('x', 'FP32', [2 ** 40, 2 ** 40], 0)]), twoDims, 0),
        'INFERENCE.INVALID_SHAPE',
        "input 'x'",
        'overflows',
      );
    });
  });

  describe('data', () => {
    it('refuses data with fewer elements than the shape holds, naming both counts', () => {
      assertDomainError(() => validate([image([1, 3, 2], 5), scale()]), 'INFERENCE.INVALID_DATA', "input 'image'", 'has 5 elements', '[1,3,2] holds 6');
    });

    it('refuses data with more elements than the shape holds', () => {
      assertDomainError(() => validate([image([1, 3, 2], 12), scale()]), 'INFERENCE.INVALID_DATA', "input 'image'", 'has 12 elements', 'holds 6');
    });
  });

  describe('requested outputs', () => {
    it('refuses an unknown output, naming it and the outputs the model has', () => {
      assertDomainError(
        () => validate([image(), scale()], ['probabilities']),
        'INFERENCE.INVALID_OUTPUT',
        "unknown output 'probabilities'",
        "'logits', 'label'",
      );
    });

    it('refuses an output requested twice', () => {
      assertDomainError(() => validate([image(), scale()], ['label', 'label']), 'INFERENCE.INVALID_OUTPUT', "output 'label'", 'more than once');
    });
  });
});

describe('schedulingParametersOf', () => {
  const withParameters = (parameters: Record<string, ParameterValue>): InferenceRequest => ({ parameters, inputs: [], requestedOutputs: [] });

  it('reads no priority and no timeout from a request without parameters', () => {
    assert.deepEqual(schedulingParametersOf(withParameters({})), { priority: undefined, timeoutMicros: undefined });
  });

  it("reads Triton's priority (a level) and timeout (microseconds) parameters, ignoring the others", () => {
    assert.deepEqual(schedulingParametersOf(withParameters({ priority: 2, timeout: 150_000, sequence_id: 'abc' })), { priority: 2, timeoutMicros: 150_000 });
  });

  it('accepts 0 for both', () => {
    assert.deepEqual(schedulingParametersOf(withParameters({ priority: 0, timeout: 0 })), { priority: 0, timeoutMicros: 0 });
  });

  const refused: [string, ParameterValue][] = [
    ['a negative number', -1],
    ['a fraction', 1.5],
    ['a number beyond the safe integers', 2 ** 53],
    ['a string', '5'],
    ['a boolean', true],
  ];
  for (const name of ['priority', 'timeout']) {
    for (const [what, value] of refused) {
      it(`refuses a ${name} that is ${what}, naming the parameter and the value`, () => {
        assertDomainError(
          () => schedulingParametersOf(withParameters({ [name]: value })),
          'INFERENCE.INVALID_REQUEST',
          `parameter '${name}'`,
          JSON.stringify(value),
          'non-negative integer',
        );
      });
    }
  }
});

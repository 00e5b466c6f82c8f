import { ONNX_RUNTIME_BACKEND } from '../../../support/model-backends.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_MAX_BATCH_SIZE,
  completeModelConfig,
  runtimeOptionsOf,
  servedSignature,
  type DeclaredModelConfig,
} from '../../../../src/domain/registry/model-config.js';
import type { ModelSignature } from '../../../../src/domain/inference/tensor.js';
import { DEFAULT_MAX_QUEUE_DELAY_MICROS, DEFAULT_QUEUE_POLICY } from '../../../../src/domain/inference/scheduling-policy.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { spec } from '../../support/tensors.js';
import { aModelConfig } from '../../support/model-version.mother.js';

/** What an image classifier's .onnx file declares: every tensor batches on its first (symbolic) dim. */
const batchingFile: ModelSignature = {
  inputs: [spec('image', 'FP32', [-1, 3, -1, -1])],
  outputs: [spec('scores', 'FP32', [-1, 1000]), spec('label', 'INT64', [-1])],
};

/** A file whose output has a fixed first dimension, so it cannot batch. */
const fixedFile: ModelSignature = {
  inputs: [spec('tokens', 'INT64', [-1, 16])],
  outputs: [spec('pooled', 'FP32', [1, 768])],
};

const complete = (declared: DeclaredModelConfig, file: ModelSignature = batchingFile) => completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', declared, file);

describe('completeModelConfig', () => {
  describe('labels (label_filename)', () => {
    const labelled: DeclaredModelConfig = { outputs: [{ name: 'scores', datatype: 'FP32', dims: [1000], labelFilename: 'imagenet.txt' }] };

    it('keeps the labels read for each labelled output, by output name; none without label files', () => {
      const config = completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', labelled, batchingFile, new Map([['imagenet.txt', ['tench', 'goldfish']]]));
      assert.deepEqual(config.labels, new Map([['scores', ['tench', 'goldfish']]]));
      assert.equal(config.outputs[0]?.labelFilename, 'imagenet.txt');
      assert.deepEqual(complete({}).labels, new Map());
    });

    it('refuses a labelled output whose label file was not read', () => {
      assertDomainError(() => completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', labelled, batchingFile), 'REGISTRY.INVALID_CONFIG', "output 'scores'", "'imagenet.txt'");
    });
  });

  describe('max_batch_size', () => {
    it(`defaults to ${DEFAULT_MAX_BATCH_SIZE} when every input and output has a dynamic first dim, which leaves the dims`, () => {
      const config = complete({});
      assert.equal(config.maxBatchSize, 8);
      assert.deepEqual(config.inputs, [{ name: 'image', datatype: 'FP32', dims: [3, -1, -1] }]);
      assert.deepEqual(config.outputs, [
        { name: 'scores', datatype: 'FP32', dims: [1000] },
        { name: 'label', datatype: 'INT64', dims: [] },
      ]);
    });

    it('defaults to 0 when one tensor has a fixed first dim, keeping full shapes as dims', () => {
      const config = complete({}, fixedFile);
      assert.equal(config.maxBatchSize, 0);
      assert.deepEqual(config.inputs, [{ name: 'tokens', datatype: 'INT64', dims: [-1, 16] }]);
      assert.deepEqual(config.outputs, [{ name: 'pooled', datatype: 'FP32', dims: [1, 768] }]);
    });

    it('defaults to 0 when a tensor is a scalar', () => {
      const scalarOut: ModelSignature = { inputs: [spec('x', 'FP32', [-1])], outputs: [spec('total', 'FP32', [])] };
      assert.equal(complete({}, scalarOut).maxBatchSize, 0);
    });

    it('keeps a declared max_batch_size', () => {
      assert.equal(complete({ maxBatchSize: 32 }).maxBatchSize, 32);
    });

    it('keeps a declared 0 on a model that could batch, with the first dim in the dims', () => {
      const config = complete({ maxBatchSize: 0 });
      assert.equal(config.maxBatchSize, 0);
      assert.deepEqual(config.inputs[0].dims, [-1, 3, -1, -1]);
    });

    it('refuses max_batch_size > 0 on a model with a fixed first dim, naming the tensor and its shape', () => {
      assertDomainError(() => complete({ maxBatchSize: 4 }, fixedFile), 'REGISTRY.INVALID_CONFIG', 'max_batch_size 4', "'pooled'", '[1,768]');
    });
  });

  describe('declared inputs and outputs', () => {
    it('may narrow a dynamic dim', () => {
      const config = complete({ inputs: [{ name: 'image', datatype: 'FP32', dims: [3, 224, 224] }] });
      assert.deepEqual(config.inputs, [{ name: 'image', datatype: 'FP32', dims: [3, 224, 224] }]);
    });

    it('completes the tensors it does not list from the model file, in the file order', () => {
      const config = complete({ outputs: [{ name: 'label', datatype: 'INT64', dims: [] }] });
      assert.deepEqual(config.outputs.map((t) => t.name), ['scores', 'label']);
      assert.deepEqual(config.outputs[0], { name: 'scores', datatype: 'FP32', dims: [1000] });
    });

    it('refuses an input the model file does not have, naming the file inputs', () => {
      assertDomainError(
        () => complete({ inputs: [{ name: 'pixels', datatype: 'FP32', dims: [3, 224, 224] }] }),
        'REGISTRY.INVALID_CONFIG',
        "input 'pixels' is not in the model file",
        "'image'",
      );
    });

    it('refuses an output the model file does not have, naming the file outputs', () => {
      assertDomainError(
        () => complete({ outputs: [{ name: 'probs', datatype: 'FP32', dims: [1000] }] }),
        'REGISTRY.INVALID_CONFIG',
        "output 'probs'",
        "'scores', 'label'",
      );
    });

    it('refuses a datatype other than the file one, naming both', () => {
      assertDomainError(
        () => complete({ outputs: [{ name: 'scores', datatype: 'FP16', dims: [1000] }] }),
        'REGISTRY.INVALID_CONFIG',
        "output 'scores'",
        'declared FP16',
        'file has FP32',
      );
    });

    it('refuses a dim other than a fixed one of the file, naming both dims', () => {
      assertDomainError(
        () => complete({ inputs: [{ name: 'image', datatype: 'FP32', dims: [1, 224, 224] }] }),
        'REGISTRY.INVALID_CONFIG',
        "input 'image'",
        'dims [1,224,224]',
        'file has [3,-1,-1]',
      );
    });

    it('refuses dims of another rank', () => {
      assertDomainError(
        () => complete({ outputs: [{ name: 'scores', datatype: 'FP32', dims: [10, 100] }] }),
        'REGISTRY.INVALID_CONFIG',
        "output 'scores'",
        'dims [10,100]',
        'file has [1000]',
      );
    });

    it('refuses to widen a fixed dim to -1', () => {
      assertDomainError(() => complete({ outputs: [{ name: 'scores', datatype: 'FP32', dims: [-1] }] }), 'REGISTRY.INVALID_CONFIG', "output 'scores'", '[-1]');
    });
  });

  describe('name and platform', () => {
    it('accepts the model directory name and the ONNX platform', () => {
      const config = complete({ name: 'resnet', platform: 'onnxruntime_onnx' });
      assert.equal(config.name, 'resnet');
      assert.equal(config.platform, 'onnxruntime_onnx');
    });

    it('refuses a name other than the model directory, naming both', () => {
      assertDomainError(() => complete({ name: 'resnet50' }), 'REGISTRY.INVALID_CONFIG', "name 'resnet50'", "'resnet'");
    });

    it('refuses a platform other than ONNX', () => {
      assertDomainError(() => complete({ platform: 'tensorflow_savedmodel' }), 'REGISTRY.INVALID_CONFIG', "'tensorflow_savedmodel'", 'onnxruntime_onnx');
    });
  });

  it('defaults the deployment: latest version, one auto instance, no accelerator, no spinning', () => {
    const config = complete({});
    assert.deepEqual(config.versionPolicy, { kind: 'latest', numVersions: 1 });
    assert.equal(config.instanceCount, 1);
    assert.equal(config.instanceKind, 'KIND_AUTO');
    assert.deepEqual(config.gpuAccelerators, []);
    assert.equal(config.allowSpinning, false);
    assert.equal(config.intraOpThreads, undefined);
    assert.equal(config.interOpThreads, undefined);
  });

  it('keeps the declared deployment', () => {
    const config = complete({
      versionPolicy: { kind: 'all' },
      instanceCount: 3,
      instanceKind: 'KIND_GPU',
      gpuAccelerators: ['tensorrt'],
      intraOpThreads: 4,
      interOpThreads: 2,
      allowSpinning: true,
    });
    assert.deepEqual(config.versionPolicy, { kind: 'all' });
    assert.equal(config.instanceCount, 3);
    assert.equal(config.instanceKind, 'KIND_GPU');
    assert.deepEqual(config.gpuAccelerators, ['tensorrt']);
    assert.equal(config.intraOpThreads, 4);
    assert.equal(config.interOpThreads, 2);
    assert.equal(config.allowSpinning, true);
  });
});

describe('completeModelConfig: scheduling', () => {
  it('batches a model whose max_batch_size is above 1, with Triton defaults for everything undeclared', () => {
    assert.deepEqual(complete({ maxBatchSize: 4 }).scheduling, {
      batching: true,
      maxBatchSize: 4,
      preferredBatchSizes: [],
      maxQueueDelayMicros: DEFAULT_MAX_QUEUE_DELAY_MICROS,
      adaptiveQueueDelay: false,
      priorityLevels: 0,
      defaultPriorityLevel: 0,
      defaultQueuePolicy: DEFAULT_QUEUE_POLICY,
      priorityQueuePolicies: new Map(),
    });
  });

  it('does not batch a model whose max_batch_size is 0 or 1', () => {
    assert.equal(complete({ maxBatchSize: 0 }).scheduling.batching, false);
    assert.equal(complete({ maxBatchSize: 1 }).scheduling.batching, false);
    assert.equal(complete({}, fixedFile).scheduling.batching, false);
  });

  it('takes the max_batch_size auto-completed from the file', () => {
    assert.equal(complete({}).scheduling.maxBatchSize, DEFAULT_MAX_BATCH_SIZE);
  });

  it('keeps the declared dynamic_batching, completing partial queue policies from the default one', () => {
    const scheduling = complete({
      maxBatchSize: 16,
      adaptiveQueueDelay: true,
      dynamicBatching: {
        preferredBatchSizes: [4, 16],
        maxQueueDelayMicros: 500,
        priorityLevels: 3,
        defaultPriorityLevel: 2,
        defaultQueuePolicy: { timeoutAction: 'DELAY', defaultTimeoutMicros: 100_000 },
        priorityQueuePolicies: new Map([[1, { maxQueueSize: 10 }]]),
      },
    }).scheduling;
    assert.deepEqual(scheduling, {
      batching: true,
      maxBatchSize: 16,
      preferredBatchSizes: [4, 16],
      maxQueueDelayMicros: 500,
      adaptiveQueueDelay: true,
      priorityLevels: 3,
      defaultPriorityLevel: 2,
      defaultQueuePolicy: { ...DEFAULT_QUEUE_POLICY, timeoutAction: 'DELAY', defaultTimeoutMicros: 100_000 },
      priorityQueuePolicies: new Map([[1, { ...DEFAULT_QUEUE_POLICY, maxQueueSize: 10 }]]),
    });
  });

  it('puts requests that name no level at the last level when no default level is declared', () => {
    const scheduling = complete({ dynamicBatching: { priorityLevels: 4 } }).scheduling;
    assert.equal(scheduling.defaultPriorityLevel, 4);
  });

  it('accepts a preferred batch size equal to max_batch_size, and 1 on a model that does not batch', () => {
    assert.deepEqual(complete({ maxBatchSize: 8, dynamicBatching: { preferredBatchSizes: [8] } }).scheduling.preferredBatchSizes, [8]);
    assert.deepEqual(complete({ maxBatchSize: 0, dynamicBatching: { preferredBatchSizes: [1] } }).scheduling.preferredBatchSizes, [1]);
  });

  describe('refuses', () => {
    it('a preferred batch size above max_batch_size, naming both', () => {
      assertDomainError(
        () => complete({ maxBatchSize: 4, dynamicBatching: { preferredBatchSizes: [2, 8] } }),
        'REGISTRY.INVALID_CONFIG',
        'dynamic_batching.preferred_batch_size 8',
        'max_batch_size 4',
      );
    });

    it('a preferred batch size of 0', () => {
      assertDomainError(() => complete({ maxBatchSize: 4, dynamicBatching: { preferredBatchSizes: [0] } }), 'REGISTRY.INVALID_CONFIG', 'preferred_batch_size 0');
    });

    it('a preferred batch size above 1 on a model that does not batch', () => {
      assertDomainError(() => complete({ maxBatchSize: 0, dynamicBatching: { preferredBatchSizes: [2] } }), 'REGISTRY.INVALID_CONFIG', 'preferred_batch_size 2');
    });

    it('a default_priority_level above priority_levels', () => {
      assertDomainError(
        () => complete({ dynamicBatching: { priorityLevels: 2, defaultPriorityLevel: 3 } }),
        'REGISTRY.INVALID_CONFIG',
        'dynamic_batching.default_priority_level 3',
        'priority_levels 2',
      );
    });

    it('a default_priority_level without priority_levels', () => {
      assertDomainError(() => complete({ dynamicBatching: { defaultPriorityLevel: 1 } }), 'REGISTRY.INVALID_CONFIG', 'default_priority_level 1', 'needs priority_levels');
    });

    for (const level of [0, 3]) {
      it(`a priority_queue_policy for level ${level} of a model with 2 levels`, () => {
        assertDomainError(
          () => complete({ dynamicBatching: { priorityLevels: 2, priorityQueuePolicies: new Map([[level, { maxQueueSize: 1 }]]) } }),
          'REGISTRY.INVALID_CONFIG',
          `dynamic_batching.priority_queue_policy names level ${level}`,
          'priority_levels is 2',
        );
      });
    }

    it('a priority_queue_policy on a model without priority levels', () => {
      assertDomainError(
        () => complete({ dynamicBatching: { priorityQueuePolicies: new Map([[1, {}]]) } }),
        'REGISTRY.INVALID_CONFIG',
        'priority_queue_policy names level 1',
        'priority_levels is 0',
      );
    });
  });
});

describe('servedSignature', () => {
  it('puts a -1 batch dimension in front of the dims when the model batches', () => {
    const signature = servedSignature(aModelConfig({ maxBatchSize: 8 }));
    assert.deepEqual(signature, {
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
      outputs: [{ name: 'scores', datatype: 'FP32', shape: [-1, 1000] }],
    });
  });

  it('serves the dims unchanged when the model does not batch', () => {
    const signature = servedSignature(aModelConfig({ maxBatchSize: 0 }));
    assert.deepEqual(signature.inputs[0].shape, [3, 224, 224]);
    assert.deepEqual(signature.outputs[0].shape, [1000]);
  });

  it('round-trips the file signature of a batching model through completeModelConfig', () => {
    assert.deepEqual(servedSignature(completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', {}, batchingFile)), batchingFile);
  });
});

describe('runtimeOptionsOf', () => {
  it('defaults to one instance, CUDA then CPU, no spinning and the runtime thread defaults', () => {
    assert.deepEqual(runtimeOptionsOf({}), {
      instanceCount: 1,
      executionProviders: ['cuda', 'cpu'],
      intraOpThreads: undefined,
      interOpThreads: undefined,
      allowSpinning: false,
    });
  });

  it('KIND_CPU runs on the CPU only, even with a GPU accelerator declared', () => {
    assert.deepEqual(runtimeOptionsOf({ instanceKind: 'KIND_CPU' }).executionProviders, ['cpu']);
    assert.deepEqual(runtimeOptionsOf({ instanceKind: 'KIND_CPU', gpuAccelerators: ['tensorrt'] }).executionProviders, ['cpu']);
  });

  it('KIND_GPU and KIND_AUTO try CUDA, then the CPU', () => {
    assert.deepEqual(runtimeOptionsOf({ instanceKind: 'KIND_GPU' }).executionProviders, ['cuda', 'cpu']);
    assert.deepEqual(runtimeOptionsOf({ instanceKind: 'KIND_AUTO' }).executionProviders, ['cuda', 'cpu']);
    assert.deepEqual(runtimeOptionsOf({ instanceKind: 'KIND_GPU', gpuAccelerators: ['cuda'] }).executionProviders, ['cuda', 'cpu']);
  });

  it('a tensorrt accelerator comes before CUDA and the CPU', () => {
    assert.deepEqual(runtimeOptionsOf({ instanceKind: 'KIND_GPU', gpuAccelerators: ['tensorrt'] }).executionProviders, ['tensorrt', 'cuda', 'cpu']);
    assert.deepEqual(runtimeOptionsOf({ gpuAccelerators: ['tensorrt'] }).executionProviders, ['tensorrt', 'cuda', 'cpu']);
  });

  it('passes the declared instance count, thread counts and spinning through', () => {
    const options = runtimeOptionsOf({ instanceKind: 'KIND_CPU', instanceCount: 4, intraOpThreads: 2, interOpThreads: 1, allowSpinning: true });
    assert.deepEqual(options, { instanceCount: 4, executionProviders: ['cpu'], intraOpThreads: 2, interOpThreads: 1, allowSpinning: true });
  });
});

describe('completeModelConfig: model_warmup samples must be requests the version accepts', () => {
  const input = (overrides: object = {}) => ({ name: 'image', datatype: 'FP32' as const, dims: [3, 32, 32], data: { kind: 'zero' as const }, ...overrides });
  const withSample = (sample: object, file: ModelSignature = batchingFile) =>
    complete({ modelWarmup: [{ name: 'w', batchSize: 1, count: 0, inputs: [input()], ...sample }] }, file);

  it('keeps a sample that fits, and none when none is declared', () => {
    assert.equal(withSample({ batchSize: DEFAULT_MAX_BATCH_SIZE }).modelWarmup.length, 1);
    assert.deepEqual(complete({}).modelWarmup, []);
  });

  const refused: [string, object, string[], ModelSignature?][] = [
    ['an input the model does not have', { inputs: [input(), input({ name: 'mask' })] }, ["model_warmup[0] 'w'", "input 'mask' is not an input of the model", "'image'"]],
    ['a model input left out', { inputs: [] }, ["input 'image' is missing"]],
    ['another datatype', { inputs: [input({ datatype: 'FP16' })] }, ["input 'image' is FP16, but the model's is FP32"]],
    ['a variable dimension', { inputs: [input({ dims: [3, -1, 32] })] }, ['dims [3,-1,32]', 'every dimension given']],
    ['a dim the model fixes otherwise', { inputs: [input({ dims: [4, 32, 32] })] }, ['dims [4,32,32]', "the model's input has [3,-1,-1]"]],
    ['another rank', { inputs: [input({ dims: [3, 32] })] }, ['dims [3,32]']],
    ['more rows than max_batch_size', { batchSize: DEFAULT_MAX_BATCH_SIZE + 1 }, [`batch_size ${DEFAULT_MAX_BATCH_SIZE + 1}`, `max_batch_size ${DEFAULT_MAX_BATCH_SIZE}`]],
    ['more than one row without batching', { batchSize: 2, inputs: [{ name: 'tokens', datatype: 'INT64', dims: [1, 16], data: { kind: 'zero' } }] }, ['batch_size 2', 'max_batch_size 0'], fixedFile],
    ['more than 64 MiB (rows x dims x element size)', { batchSize: 8, inputs: [input({ dims: [3, 1024, 1024] })] }, ['more than 67108864 bytes']],
    ['a BYTES input counted 4 bytes an element', { inputs: [{ name: 'text', datatype: 'BYTES', dims: [20_000_000], data: { kind: 'zero' } }] }, ['more than 67108864 bytes'], { inputs: [spec('text', 'BYTES', [-1, -1])], outputs: [spec('n', 'INT64', [-1])] }],
  ];
  for (const [what, sample, mentions, file] of refused) {
    it(`refuses ${what} with INVALID_CONFIG naming it`, () => {
      assertDomainError(() => withSample(sample, file), 'REGISTRY.INVALID_CONFIG', ...mentions);
    });
  }
});

import { ONNX_RUNTIME_BACKEND } from '../../../support/model-backends.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig, toConfigFile } from '../../../../src/infra/model-repository/model-config.schema.js';
import { completeModelConfig, type DeclaredModelConfig } from '../../../../src/domain/registry/model-config.js';
import type { ModelSignature } from '../../../../src/domain/inference/tensor.js';
import { assertErrorMentions } from '../../support/domain-error.assertions.js';
import { spec } from '../../support/tensors.js';

/** A config.json using every field this server acts on, as a Triton user writes it. */
const fullConfigFile = {
  name: 'resnet',
  platform: 'onnxruntime_onnx',
  backend: 'onnxruntime',
  max_batch_size: 4,
  input: [{ name: 'image', data_type: 'TYPE_FP32', dims: [3, 224, 224] }],
  output: [
    { name: 'scores', data_type: 'TYPE_FP16', dims: [1000] },
    { name: 'label', data_type: 'TYPE_STRING', dims: [-1] },
  ],
  version_policy: { latest: { num_versions: 2 } },
  instance_group: [{ count: 2, kind: 'KIND_GPU', gpus: [0] }],
  optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt' }] } },
  parameters: {
    intra_op_thread_count: { string_value: '4' },
    inter_op_thread_count: { string_value: '1' },
    allow_spinning: { string_value: '0' },
  },
};

const parse = (config: object) => parseModelConfig(JSON.stringify(config));
const withParameter = (name: string, value: string) => parse({ parameters: { [name]: { string_value: value } } });
const definedFields = (declared: DeclaredModelConfig) => Object.entries(declared).filter(([, value]) => value !== undefined);

describe('parseModelConfig', () => {
  it('maps a generative model: backend onnx_generative and its scheduling limits', () => {
    const declared = parse({
      backend: 'onnx_generative',
      parameters: {
        max_num_seqs: { string_value: '8' }, max_model_len: { string_value: '256' }, kv_cache_bytes: { string_value: '1048576' }, max_prefill_tokens_per_step: { string_value: '0' }, stream_buffer_tokens: { string_value: '4' },
        overlap_steps: { string_value: 'false' },
      },
    });
    assert.equal(declared.backend, 'onnx_generative');
    assert.deepEqual(declared.generation, { maxNumSeqs: 8, maxModelLen: 256, kvCacheBytes: 1048576, maxPrefillTokensPerStep: 0, streamBufferTokens: 4, overlapSteps: false });
    assert.equal(parse({}).generation, undefined);
    assert.deepEqual(parse({ parameters: { overlap_steps: { string_value: '1' } } }).generation?.overlapSteps, true);
    assert.throws(() => parse({ parameters: { overlap_steps: { string_value: 'sometimes' } } }), /parameters\.overlap_steps: 'sometimes' is not one of 0, 1, true, false/);
  });

  it('maps a full Triton-style config.json to the declared configuration', () => {
    assert.deepEqual(definedFields(parse(fullConfigFile)), definedFields({
      name: 'resnet',
      platform: 'onnxruntime_onnx',
      backend: 'onnxruntime',
      maxBatchSize: 4,
      inputs: [{ name: 'image', datatype: 'FP32', dims: [3, 224, 224] }],
      outputs: [
        { name: 'scores', datatype: 'FP16', dims: [1000] },
        { name: 'label', datatype: 'BYTES', dims: [-1] },
      ],
      versionPolicy: { kind: 'latest', numVersions: 2 },
      instanceCount: 2,
      instanceKind: 'KIND_GPU',
      gpuAccelerators: ['tensorrt'],
      intraOpThreads: 4,
      interOpThreads: 1,
      allowSpinning: false,
    }));
  });

  it('declares nothing for an empty object, leaving everything to auto-complete', () => {
    assert.deepEqual(definedFields(parseModelConfig('{}')), []);
  });

  it('maps the all and specific version policies', () => {
    assert.deepEqual(parse({ version_policy: { all: {} } }).versionPolicy, { kind: 'all' });
    assert.deepEqual(parse({ version_policy: { specific: { versions: [1, 3] } } }).versionPolicy, { kind: 'specific', versions: [1, 3] });
  });

  it('reads allow_spinning from 1, true, 0 and false', () => {
    assert.equal(withParameter('allow_spinning', '1').allowSpinning, true);
    assert.equal(withParameter('allow_spinning', 'true').allowSpinning, true);
    assert.equal(withParameter('allow_spinning', '0').allowSpinning, false);
    assert.equal(withParameter('allow_spinning', 'false').allowSpinning, false);
  });

  it('reads thread counts from 1 to 256', () => {
    assert.equal(withParameter('intra_op_thread_count', '1').intraOpThreads, 1);
    assert.equal(withParameter('inter_op_thread_count', '256').interOpThreads, 256);
  });

  describe('dynamic_batching', () => {
    it("maps Triton's dynamic_batching section, microseconds given as numbers or as protobuf's decimal strings", () => {
      const declared = parse({
        max_batch_size: 8,
        dynamic_batching: {
          preferred_batch_size: [4, 8],
          max_queue_delay_microseconds: '100',
          priority_levels: 2,
          default_priority_level: 1,
          default_queue_policy: { timeout_action: 'DELAY', default_timeout_microseconds: 5000, allow_timeout_override: false, max_queue_size: 16 },
          priority_queue_policy: { '2': { max_queue_size: 4, default_timeout_microseconds: '250' } },
        },
      });
      assert.deepEqual(declared.dynamicBatching, {
        preferredBatchSizes: [4, 8],
        maxQueueDelayMicros: 100,
        priorityLevels: 2,
        defaultPriorityLevel: 1,
        defaultQueuePolicy: { timeoutAction: 'DELAY', defaultTimeoutMicros: 5000, allowTimeoutOverride: false, maxQueueSize: 16 },
        priorityQueuePolicies: new Map([[2, { maxQueueSize: 4, defaultTimeoutMicros: 250 }]]),
      });
    });

    it('leaves out of a queue policy what the file leaves out, so the defaults fill it', () => {
      const declared = parse({ dynamic_batching: { default_queue_policy: { max_queue_size: 3 } } });
      assert.deepEqual(declared.dynamicBatching?.defaultQueuePolicy, { maxQueueSize: 3 });
    });

    it('declares an empty section as no setting at all', () => {
      const declared = parse({ dynamic_batching: {} });
      assert.ok(declared.dynamicBatching);
      assert.deepEqual(definedFields(declared.dynamicBatching as DeclaredModelConfig), []);
    });

    it('reads parameters.adaptive_queue_delay as a flag', () => {
      assert.equal(withParameter('adaptive_queue_delay', '1').adaptiveQueueDelay, true);
      assert.equal(withParameter('adaptive_queue_delay', 'false').adaptiveQueueDelay, false);
      assert.equal(parse({}).adaptiveQueueDelay, undefined);
    });

    describe('refuses, naming the field', () => {
      const refused: [string, object, string[]][] = [
        ['a timeout action other than REJECT and DELAY', { default_queue_policy: { timeout_action: 'DROP' } }, ['dynamic_batching.default_queue_policy.timeout_action']],
        ['a timeout that is not a whole number', { default_queue_policy: { default_timeout_microseconds: 'soon' } }, ['dynamic_batching.default_queue_policy.default_timeout_microseconds', 'an integer (a JSON number or a decimal string)']],
        ['an allow_timeout_override that is not a boolean', { default_queue_policy: { allow_timeout_override: 'yes' } }, ['dynamic_batching.default_queue_policy.allow_timeout_override']],
        ['a negative max_queue_size of a level', { priority_queue_policy: { '1': { max_queue_size: -1 } } }, ['dynamic_batching.priority_queue_policy.1.max_queue_size']],
        ['a field a queue policy does not have', { priority_queue_policy: { '1': { timeout: 5 } } }, ['dynamic_batching.priority_queue_policy.1', 'timeout']],
        ['a level 0 in priority_queue_policy', { priority_queue_policy: { '0': {} } }, ['dynamic_batching.priority_queue_policy', "'0' is not a priority level"]],
        ['a level that is not a number in priority_queue_policy', { priority_queue_policy: { high: {} } }, ['dynamic_batching.priority_queue_policy', "'high' is not a priority level"]],
        ['a fractional max_queue_delay_microseconds', { max_queue_delay_microseconds: '1.5' }, ['dynamic_batching.max_queue_delay_microseconds', 'an integer']],
        ['a negative max_queue_delay_microseconds', { max_queue_delay_microseconds: -5 }, ['dynamic_batching.max_queue_delay_microseconds']],
        ['a preferred batch size of 0', { preferred_batch_size: [4, 0] }, ['dynamic_batching.preferred_batch_size.1']],
        ['more than 1000 priority levels', { priority_levels: 1001 }, ['dynamic_batching.priority_levels']],
        ['a negative default_priority_level', { default_priority_level: -1 }, ['dynamic_batching.default_priority_level']],
        ['a field dynamic_batching does not have (a typo)', { max_queue_delay_us: 100 }, ['dynamic_batching', 'max_queue_delay_us']],
      ];
      for (const [what, section, mentions] of refused) {
        it(what, () => {
          assertErrorMentions(() => parse({ dynamic_batching: section }), ['config.json', ...mentions]);
        });
      }

      it('an adaptive_queue_delay that is not a flag', () => {
        assertErrorMentions(() => withParameter('adaptive_queue_delay', 'maybe'), ['parameters.adaptive_queue_delay', "'maybe'"]);
      });
    });
  });

  describe('refuses, naming the field', () => {
    it('text that is not JSON', () => {
      assertErrorMentions(() => parseModelConfig('{ "max_batch_size": 4, }'), ['config.json is not valid JSON']);
    });

    it('a top-level field it does not know (a typo)', () => {
      assertErrorMentions(() => parse({ max_batch_sise: 4 }), ['config.json', 'max_batch_sise']);
    });

    it('a nested field it does not know', () => {
      assertErrorMentions(() => parse({ input: [{ name: 'image', data_type: 'TYPE_FP32', dim: [3] }] }), ['input.0', 'dim']);
    });

    it('a string that is not a decimal integer where an integer belongs', () => {
      for (const value of ['four', '4.0', '1e3', '', ' 4']) {
        assertErrorMentions(() => parse({ max_batch_size: value }), ['config.json: max_batch_size:', 'an integer (a JSON number or a decimal string)']);
      }
    });

    it('a negative max_batch_size', () => {
      assertErrorMentions(() => parse({ max_batch_size: -1 }), ['max_batch_size']);
    });

    it('a dim that is not an integer', () => {
      assertErrorMentions(() => parse({ output: [{ name: 'scores', data_type: 'TYPE_FP32', dims: [1.5] }] }), ['output.0.dims.0']);
      assertErrorMentions(() => parse({ output: [{ name: 'scores', data_type: 'TYPE_FP32', dims: ['1000.5'] }] }), ['output.0.dims.0']);
    });

    it('a datatype without its TYPE_ prefix', () => {
      assertErrorMentions(() => parse({ input: [{ name: 'image', data_type: 'FP32', dims: [3] }] }), ['input.0.data_type']);
    });

    it('a backend that is no name (which backends are served, the registry checks)', () => {
      assertErrorMentions(() => parse({ backend: '' }), ['backend']);
      assert.equal(parse({ backend: 'tensorflow' }).backend, 'tensorflow');
    });

    it('a generative limit that is not a whole number', () => {
      assertErrorMentions(() => parse({ backend: 'onnx_generative', parameters: { max_num_seqs: { string_value: 'many' } } }), ['parameters.max_num_seqs', "'many'"]);
      assertErrorMentions(() => parse({ backend: 'onnx_generative', parameters: { max_model_len: { string_value: '1' } } }), ['parameters.max_model_len', 'at least 2']);
    });

    it('a version policy of zero versions', () => {
      assertErrorMentions(() => parse({ version_policy: { latest: { num_versions: 0 } } }), ['version_policy']);
    });

    for (const bad of ['0', '257', 'four', '1.5', '-2', '']) {
      it(`the thread count '${bad}'`, () => {
        assertErrorMentions(() => withParameter('intra_op_thread_count', bad), ['parameters.intra_op_thread_count', `'${bad}'`, '1 to 256']);
      });
    }

    it('an allow_spinning that is not a flag', () => {
      assertErrorMentions(() => withParameter('allow_spinning', 'yes'), ['parameters.allow_spinning', "'yes'"]);
    });

    it('a thread count given as a number rather than a string_value', () => {
      assertErrorMentions(() => parse({ parameters: { intra_op_thread_count: 4 } }), ['parameters.intra_op_thread_count']);
    });

    it('two instance groups', () => {
      assertErrorMentions(() => parse({ instance_group: [{ count: 1, kind: 'KIND_CPU' }, { count: 1, kind: 'KIND_GPU' }] }), [
        'instance_group',
        'only one instance_group is supported',
      ]);
    });

    it('an instance count of 0', () => {
      assertErrorMentions(() => parse({ instance_group: [{ count: 0 }] }), ['instance_group.0.count']);
    });

    it('a JSON value that is not an object', () => {
      assertErrorMentions(() => parseModelConfig('[]'), ['config.json', '(root)']);
    });
  });
});

describe("parseModelConfig: protobuf's JSON form (what Triton's clients and examples send as a load's config)", () => {
  it('takes integers as decimal strings, 64-bit and 32-bit fields alike', () => {
    // NVIDIA's simple_*_model_control examples send exactly this.
    assert.equal(parseModelConfig('{"max_batch_size":"16"}').maxBatchSize, 16);
    const declared = parse({
      max_batch_size: '8',
      input: [{ name: 'image', data_type: 'TYPE_FP32', dims: ['3', '-1'] }],
      version_policy: { specific: { versions: ['1', '3'] } },
      instance_group: [{ count: '2', kind: 'KIND_CPU', gpus: ['0'] }],
      dynamic_batching: {
        preferred_batch_size: ['4'],
        max_queue_delay_microseconds: '100',
        priority_levels: '2',
        default_priority_level: '1',
        default_queue_policy: { default_timeout_microseconds: '5000', max_queue_size: '16' },
      },
    });
    assert.deepEqual(declared.inputs, [{ name: 'image', datatype: 'FP32', dims: [3, -1] }]);
    assert.deepEqual(declared.versionPolicy, { kind: 'specific', versions: [1, 3] });
    assert.equal(declared.instanceCount, 2);
    assert.deepEqual(declared.dynamicBatching, {
      preferredBatchSizes: [4],
      maxQueueDelayMicros: 100,
      priorityLevels: 2,
      defaultPriorityLevel: 1,
      defaultQueuePolicy: { defaultTimeoutMicros: 5000, maxQueueSize: 16 },
      priorityQueuePolicies: undefined,
    });
    assert.deepEqual(parse({ version_policy: { latest: { num_versions: '2' } } }).versionPolicy, { kind: 'latest', numVersions: 2 });
  });

  it('keeps the bounds of each field for strings too', () => {
    assertErrorMentions(() => parse({ max_batch_size: '-1' }), ['max_batch_size', 'expected number to be >=0']);
    assertErrorMentions(() => parse({ max_batch_size: -1 }), ['max_batch_size', 'expected number to be >=0']);
    assertErrorMentions(() => parse({ max_batch_size: '2147483648' }), ['max_batch_size', 'expected number to be <=2147483647']);
    assertErrorMentions(() => parse({ dynamic_batching: { max_queue_delay_microseconds: '18446744073709551615' } }), ['max_queue_delay_microseconds']);
    assertErrorMentions(() => parse({ instance_group: [{ count: '65' }] }), ['instance_group.0.count']);
  });

  it('takes enums by name or by number', () => {
    const declared = parse({
      input: [{ name: 'image', data_type: 11, dims: [3] }],
      output: [{ name: 'label', data_type: 13, dims: [1] }],
      instance_group: [{ kind: 2 }],
      dynamic_batching: { default_queue_policy: { timeout_action: 1 } },
    });
    assert.deepEqual(declared.inputs?.[0]?.datatype, 'FP32');
    assert.deepEqual(declared.outputs?.[0]?.datatype, 'BYTES');
    assert.equal(declared.instanceKind, 'KIND_CPU');
    assert.equal(declared.dynamicBatching?.defaultQueuePolicy?.timeoutAction, 'DELAY');
    assert.equal(parse({ instance_group: [{ kind: 0 }] }).instanceKind, 'KIND_AUTO');
    assert.equal(parse({ instance_group: [{ kind: 1 }] }).instanceKind, 'KIND_GPU');
    // Numbers of values this server does not serve are refused like their names.
    assertErrorMentions(() => parse({ instance_group: [{ kind: 3 }] }), ['instance_group.0.kind']);
    assertErrorMentions(() => parse({ input: [{ name: 'x', data_type: 0, dims: [] }] }), ['input.0.data_type']);
    assertErrorMentions(() => parse({ input: [{ name: 'x', data_type: 14, dims: [] }] }), ['input.0.data_type']);
    assertErrorMentions(() => parse({ input: [{ name: 'x', data_type: 99, dims: [] }] }), ['input.0.data_type']);
  });

  it('takes what protobuf leaves out as its default: empty dims, an empty optimization section', () => {
    assert.deepEqual(parse({ output: [{ name: 'label', data_type: 'TYPE_INT64' }] }).outputs, [{ name: 'label', datatype: 'INT64', dims: [] }]);
    assert.deepEqual(parse({ optimization: {} }).gpuAccelerators, undefined);
    assert.deepEqual(parse({ optimization: { execution_accelerators: {} } }).gpuAccelerators, undefined);
  });

  it("reads an output's label_filename, and refuses one on an input", () => {
    assert.deepEqual(parse({ output: [{ name: 'scores', data_type: 'TYPE_FP32', dims: [3], label_filename: 'labels.txt' }] }).outputs, [
      { name: 'scores', datatype: 'FP32', dims: [3], labelFilename: 'labels.txt' },
    ]);
    assertErrorMentions(() => parse({ input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [3], label_filename: 'labels.txt' }] }), ['input.0', 'label_filename']);
    assertErrorMentions(() => parse({ output: [{ name: 'x', data_type: 'TYPE_FP32', dims: [3], label_filename: '' }] }), ['output.0.label_filename']);
  });
});

describe('toConfigFile', () => {
  const fileSignature: ModelSignature = {
    inputs: [spec('image', 'FP32', [-1, 3, -1, -1])],
    outputs: [spec('scores', 'FP32', [-1, 1000]), spec('label', 'BYTES', [-1])],
  };
  const roundTrip = (declared: DeclaredModelConfig) => {
    const config = completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', declared, fileSignature);
    const reparsed = parseModelConfig(JSON.stringify(toConfigFile(config)));
    return { config, again: completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', reparsed, fileSignature) };
  };

  it('writes a completed configuration that parses back to the same configuration', () => {
    const { config, again } = roundTrip({
      maxBatchSize: 4,
      inputs: [{ name: 'image', datatype: 'FP32', dims: [3, 224, 224] }],
      versionPolicy: { kind: 'specific', versions: [1, 3] },
      instanceCount: 2,
      instanceKind: 'KIND_GPU',
      gpuAccelerators: ['tensorrt'],
      intraOpThreads: 4,
      interOpThreads: 2,
      allowSpinning: true,
    });
    assert.deepEqual(again, config);
  });

  it('round-trips the defaults as well', () => {
    const { config, again } = roundTrip({});
    assert.deepEqual(again, config);
    assert.deepEqual(again.versionPolicy, { kind: 'latest', numVersions: 1 });
  });

  it('round-trips dynamic_batching, its queue policies and the adaptive delay', () => {
    const { config, again } = roundTrip({
      maxBatchSize: 8,
      adaptiveQueueDelay: true,
      dynamicBatching: {
        preferredBatchSizes: [4, 8],
        maxQueueDelayMicros: 2500,
        priorityLevels: 3,
        defaultPriorityLevel: 2,
        defaultQueuePolicy: { timeoutAction: 'DELAY', defaultTimeoutMicros: 100_000, allowTimeoutOverride: false, maxQueueSize: 64 },
        priorityQueuePolicies: new Map([
          [1, { maxQueueSize: 4 }],
          [3, { timeoutAction: 'REJECT', defaultTimeoutMicros: 50 }],
        ]),
      },
    });
    assert.deepEqual(again, config);
    assert.equal(again.scheduling.adaptiveQueueDelay, true);
    assert.equal(again.scheduling.priorityQueuePolicies.get(3)?.defaultTimeoutMicros, 50);
  });

  it("writes dynamic_batching with Triton's field names, every queue policy complete", () => {
    const config = completeModelConfig(ONNX_RUNTIME_BACKEND, 
      'resnet',
      { dynamicBatching: { preferredBatchSizes: [4], maxQueueDelayMicros: 100, priorityLevels: 2, priorityQueuePolicies: new Map([[1, { maxQueueSize: 2 }]]) } },
      fileSignature,
    );
    const file = toConfigFile(config);
    assert.deepEqual(file.dynamic_batching, {
      preferred_batch_size: [4],
      max_queue_delay_microseconds: 100,
      priority_levels: 2,
      default_priority_level: 2,
      default_queue_policy: { timeout_action: 'REJECT', default_timeout_microseconds: 0, allow_timeout_override: true, max_queue_size: 0 },
      priority_queue_policy: { '1': { timeout_action: 'REJECT', default_timeout_microseconds: 0, allow_timeout_override: true, max_queue_size: 2 } },
    });
    assert.deepEqual(file.parameters?.adaptive_queue_delay, { string_value: '0' });
  });

  it("writes an output's label_filename, and keeps the labels read for it", () => {
    const declared = parseModelConfig(JSON.stringify({ output: [{ name: 'scores', data_type: 'TYPE_FP32', dims: [1000], label_filename: 'classes.txt' }] }));
    const config = completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', declared, fileSignature, new Map([['classes.txt', ['cat', 'dog']]]));
    assert.deepEqual(config.labels, new Map([['scores', ['cat', 'dog']]]));
    const file = toConfigFile(config);
    assert.deepEqual(file.output, [
      { name: 'scores', data_type: 'TYPE_FP32', dims: [1000], label_filename: 'classes.txt' },
      { name: 'label', data_type: 'TYPE_STRING', dims: [] },
    ]);
    const again = completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', parseModelConfig(JSON.stringify(file)), fileSignature, new Map([['classes.txt', ['cat', 'dog']]]));
    assert.deepEqual(again, config);
  });

  it("writes Triton's field names and datatypes", () => {
    const file = toConfigFile(completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', { versionPolicy: { kind: 'all' } }, fileSignature));
    assert.equal(file.max_batch_size, 8);
    assert.deepEqual(file.input, [{ name: 'image', data_type: 'TYPE_FP32', dims: [3, -1, -1] }]);
    assert.deepEqual(file.output?.[1], { name: 'label', data_type: 'TYPE_STRING', dims: [] });
    assert.deepEqual(file.version_policy, { all: {} });
  });
});

describe("model_warmup (Triton's ModelWarmup, JSON form)", () => {
  const fileSignature: ModelSignature = { inputs: [spec('image', 'FP32', [-1, 3, -1, -1])], outputs: [spec('scores', 'FP32', [-1, 10])] };
  const sample = (inputs: object, extra: object = {}) => ({ model_warmup: [{ name: 's', batch_size: 2, inputs, count: 3, ...extra }] });

  it('maps each sample: name, batch_size, count, and each input with its dims and where its data comes from', () => {
    const declared = parse(
      sample({
        image: { data_type: 'TYPE_FP32', dims: [3, 8, 8], random_data: true },
        mask: { data_type: 'TYPE_BOOL', dims: [1], zero_data: true },
        text: { data_type: 'TYPE_STRING', dims: [2], input_data_file: 'texts/two.bin' },
      }),
    );
    assert.deepEqual(declared.modelWarmup, [
      {
        name: 's',
        batchSize: 2,
        count: 3,
        inputs: [
          { name: 'image', datatype: 'FP32', dims: [3, 8, 8], data: { kind: 'random' } },
          { name: 'mask', datatype: 'BOOL', dims: [1], data: { kind: 'zero' } },
          { name: 'text', datatype: 'BYTES', dims: [2], data: { kind: 'file', file: 'texts/two.bin' } },
        ],
      },
    ]);
  });

  it("takes Triton's defaults for what a sample leaves out: no name, batch_size 0 (skipped), count 0 (once)", () => {
    assert.deepEqual(parse({ model_warmup: [{}] }).modelWarmup, [{ name: '', batchSize: 0, inputs: [], count: 0 }]);
  });

  describe('refuses, naming the field', () => {
    const cases: [string, object, string[]][] = [
      ['an input without data', sample({ x: { data_type: 'TYPE_FP32', dims: [1] } }), ['model_warmup.0.inputs.x', 'exactly one of zero_data, random_data, input_data_file']],
      ['an input with two kinds of data', sample({ x: { data_type: 'TYPE_FP32', dims: [1], zero_data: true, random_data: true } }), ['model_warmup.0.inputs.x', 'not zero_data and random_data']],
      ['a file path going up', sample({ x: { data_type: 'TYPE_FP32', dims: [1], input_data_file: '../config.json' } }), ['model_warmup.0.inputs.x.input_data_file', "'../config.json'"]],
      ['an absolute file path', sample({ x: { data_type: 'TYPE_FP32', dims: [1], input_data_file: '/etc/passwd' } }), ['input_data_file', "'/etc/passwd'"]],
      ['a file path with a NUL byte', sample({ x: { data_type: 'TYPE_FP32', dims: [1], input_data_file: 'a\u0000b' } }), ['input_data_file']],
      ['an unknown datatype', sample({ x: { data_type: 'TYPE_FP128', dims: [1], zero_data: true } }), ['model_warmup.0.inputs.x.data_type']],
      ['a negative batch_size', sample({}, { batch_size: -1 }), ['model_warmup.0.batch_size']],
      ['a field a sample does not have', sample({}, { repeat: 2 }), ['model_warmup.0', 'repeat']],
    ];
    for (const [what, config, mentions] of cases) {
      it(what, () => {
        assertErrorMentions(() => parse(config), ['config.json', ...mentions]);
      });
    }
  });

  it('is written back in the same JSON form by GET config (toConfigFile)', () => {
    const text = { model_warmup: [{ name: 'w', batch_size: 1, inputs: { image: { data_type: 'TYPE_FP32', dims: [3, 4, 4], input_data_file: 'image.bin' } }, count: 0 }] };
    const file = toConfigFile(completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', parse(text), fileSignature));
    assert.deepEqual(file.model_warmup, text.model_warmup);
    assert.deepEqual(toConfigFile(completeModelConfig(ONNX_RUNTIME_BACKEND, 'resnet', {}, fileSignature)).model_warmup, []);
  });
});

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
  it('maps a full Triton-style config.json to the declared configuration', () => {
    assert.deepEqual(definedFields(parse(fullConfigFile)), definedFields({
      name: 'resnet',
      platform: 'onnxruntime_onnx',
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

    it('a number given as a string', () => {
      assertErrorMentions(() => parse({ max_batch_size: '4' }), ['config.json: max_batch_size:']);
    });

    it('a negative max_batch_size', () => {
      assertErrorMentions(() => parse({ max_batch_size: -1 }), ['max_batch_size']);
    });

    it('a dim that is not an integer', () => {
      assertErrorMentions(() => parse({ output: [{ name: 'scores', data_type: 'TYPE_FP32', dims: ['1000'] }] }), ['output.0.dims.0']);
    });

    it('a datatype without its TYPE_ prefix', () => {
      assertErrorMentions(() => parse({ input: [{ name: 'image', data_type: 'FP32', dims: [3] }] }), ['input.0.data_type']);
    });

    it('a backend other than onnxruntime', () => {
      assertErrorMentions(() => parse({ backend: 'tensorflow' }), ['backend']);
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

describe('toConfigFile', () => {
  const fileSignature: ModelSignature = {
    inputs: [spec('image', 'FP32', [-1, 3, -1, -1])],
    outputs: [spec('scores', 'FP32', [-1, 1000]), spec('label', 'BYTES', [-1])],
  };
  const roundTrip = (declared: DeclaredModelConfig) => {
    const config = completeModelConfig('resnet', declared, fileSignature);
    const reparsed = parseModelConfig(JSON.stringify(toConfigFile(config)));
    return { config, again: completeModelConfig('resnet', reparsed, fileSignature) };
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

  it("writes Triton's field names and datatypes", () => {
    const file = toConfigFile(completeModelConfig('resnet', { versionPolicy: { kind: 'all' } }, fileSignature));
    assert.equal(file.max_batch_size, 8);
    assert.deepEqual(file.input, [{ name: 'image', data_type: 'TYPE_FP32', dims: [3, -1, -1] }]);
    assert.deepEqual(file.output?.[1], { name: 'label', data_type: 'TYPE_STRING', dims: [] });
    assert.deepEqual(file.version_policy, { all: {} });
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseBackend, type ModelBackend } from '../../../../src/domain/registry/model-backend.js';
import { completeModelConfig } from '../../../../src/domain/registry/model-config.js';
import { ModelBackendRegistry } from '../../../../src/infra/backends/model-backend-registry.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { SERVED_BACKENDS } from '../../../support/model-backends.js';

const onnx: ModelBackend = { name: 'onnxruntime', platforms: ['onnxruntime_onnx'], modelFileName: 'model.onnx' };
const generative: ModelBackend = { name: 'generative', platforms: ['generative_onnx', 'llm'], modelFileName: 'decoder.onnx' };

describe('choosing the backend of a model configuration', () => {
  it('none named: the first registered; by backend name; by platform; by both when they agree', () => {
    const backends = [onnx, generative];
    assert.equal(chooseBackend(backends, {}), onnx);
    assert.equal(chooseBackend(backends, { backend: 'generative' }), generative);
    assert.equal(chooseBackend(backends, { platform: 'llm' }), generative);
    assert.equal(chooseBackend(backends, { platform: 'onnxruntime_onnx', backend: 'onnxruntime' }), onnx);
  });

  it('refuses what is not served, naming it and what is', () => {
    assertDomainError(() => chooseBackend([onnx], { backend: 'tensorflow' }), 'REGISTRY.INVALID_CONFIG', "backend 'tensorflow'", "the only backend is 'onnxruntime'");
    assertDomainError(() => chooseBackend([onnx], { platform: 'tensorflow_savedmodel' }), 'REGISTRY.INVALID_CONFIG', "platform 'tensorflow_savedmodel' is not served here", "the only platform is 'onnxruntime_onnx'");
    assertDomainError(() => chooseBackend([onnx, generative], { platform: 'x' }), 'REGISTRY.INVALID_CONFIG', "'onnxruntime_onnx', 'generative_onnx', 'llm'");
    assertDomainError(() => chooseBackend([onnx, generative], { backend: 'onnxruntime', platform: 'llm' }), 'REGISTRY.INVALID_CONFIG', "platform 'llm' is not served by backend 'onnxruntime'");
  });

  it('the registry refuses a backend registered twice', () => {
    assert.throws(() => new ModelBackendRegistry([onnx, { ...onnx }]), /'onnxruntime' is registered twice/);
  });

  it("the server's registry: ONNX Runtime, platform onnxruntime_onnx, file model.onnx, for a configuration naming neither", () => {
    assert.deepEqual(SERVED_BACKENDS.forConfig({}), { name: 'onnxruntime', platforms: ['onnxruntime_onnx'], modelFileName: 'model.onnx' });
  });
});

describe('a configuration completed for its backend', () => {
  const file = { inputs: [{ name: 'x', datatype: 'FP32' as const, shape: [-1, 2] }], outputs: [{ name: 'y', datatype: 'FP32' as const, shape: [-1, 2] }] };

  it("reports the backend's name and its first platform, or the platform declared", () => {
    const config = completeModelConfig(generative, 'm', {}, file);
    assert.deepEqual([config.backend, config.platform], ['generative', 'generative_onnx']);
    assert.equal(completeModelConfig(generative, 'm', { platform: 'llm' }, file).platform, 'llm');
  });

  it("refuses a declaration that is another backend's", () => {
    assertDomainError(() => completeModelConfig(onnx, 'm', { platform: 'llm' }, file), 'REGISTRY.INVALID_CONFIG', "backend 'onnxruntime'");
    assertDomainError(() => completeModelConfig(onnx, 'm', { backend: 'generative' }, file), 'REGISTRY.INVALID_CONFIG', "backend 'onnxruntime'");
  });
});

import { ONNX_RUNTIME_BACKEND } from '../../../support/model-backends.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseModelConfig, toConfigFile } from '../../../../src/infra/model-repository/model-config.schema.js';
import { completeModelConfig, type DeclaredModelConfig } from '../../../../src/domain/registry/model-config.js';
import type { ModelSignature } from '../../../../src/domain/inference/tensor.js';
import { assertErrorMentions } from '../../support/domain-error.assertions.js';
import { spec } from '../../support/tensors.js';

/** config.json's in-flight limit parameters: `max_inflight_requests` and `adaptive_concurrency` (string parameters, as Triton writes them). */
const parameters = (values: Record<string, string>) =>
  parseModelConfig(JSON.stringify({ parameters: Object.fromEntries(Object.entries(values).map(([name, value]) => [name, { string_value: value }])) }));

const signature: ModelSignature = { inputs: [spec('input', 'FP32', [-1, 4])], outputs: [spec('label', 'INT64', [-1])] };

describe('config.json: max_inflight_requests and adaptive_concurrency', () => {
  it('reads a cap, and 0 as "no cap" (kept, so that it overrides MAX_INFLIGHT_REQUESTS)', () => {
    assert.deepEqual(parameters({ max_inflight_requests: '32' }).concurrency, { maxInFlight: 32 });
    assert.deepEqual(parameters({ max_inflight_requests: '0' }).concurrency, { maxInFlight: 0 });
    assert.deepEqual(parameters({ max_inflight_requests: '9999999' }).concurrency, { maxInFlight: 9_999_999 });
  });

  it('reads adaptive_concurrency from 1, true, 0 and false', () => {
    assert.deepEqual(parameters({ adaptive_concurrency: '1' }).concurrency, { adaptive: true });
    assert.deepEqual(parameters({ adaptive_concurrency: 'true' }).concurrency, { adaptive: true });
    assert.deepEqual(parameters({ adaptive_concurrency: '0' }).concurrency, { adaptive: false });
    assert.deepEqual(parameters({ adaptive_concurrency: 'false' }).concurrency, { adaptive: false });
  });

  it('reads both together: an adaptive limit under a ceiling', () => {
    assert.deepEqual(parameters({ max_inflight_requests: '64', adaptive_concurrency: '1' }).concurrency, { maxInFlight: 64, adaptive: true });
  });

  it("declares neither when the file sets neither: the server's defaults apply", () => {
    const declared = parseModelConfig('{}');
    assert.equal(declared.concurrency?.maxInFlight, undefined);
    assert.equal(declared.concurrency?.adaptive, undefined);
    assert.deepEqual(completeModelConfig(ONNX_RUNTIME_BACKEND, 'm', {}, signature).concurrency, {});
  });

  describe('refuses, naming the field and the value', () => {
    for (const bad of ['-1', 'ten', '1.5', '', ' 4', '1e3', '10000000']) {
      it(`max_inflight_requests '${bad}'`, () => {
        assertErrorMentions(() => parameters({ max_inflight_requests: bad }), ['config.json', 'parameters.max_inflight_requests', `'${bad}'`]);
      });
    }

    for (const bad of ['yes', '2', 'TRUE', '']) {
      it(`adaptive_concurrency '${bad}'`, () => {
        assertErrorMentions(() => parameters({ adaptive_concurrency: bad }), ['config.json', 'parameters.adaptive_concurrency', `'${bad}'`]);
      });
    }

    it('a cap given as a number rather than a string_value', () => {
      assertErrorMentions(() => parseModelConfig('{"parameters": {"max_inflight_requests": 8}}'), ['config.json', 'parameters.max_inflight_requests']);
    });

    it('a misspelt parameter', () => {
      assertErrorMentions(() => parameters({ max_inflight_request: '8' }), ['config.json', 'max_inflight_request']);
    });
  });

  describe('the complete configuration (GET .../config)', () => {
    const roundTrip = (declared: DeclaredModelConfig) => {
      const config = completeModelConfig(ONNX_RUNTIME_BACKEND, 'm', declared, signature);
      const file = toConfigFile(config);
      return { config, file, again: completeModelConfig(ONNX_RUNTIME_BACKEND, 'm', parseModelConfig(JSON.stringify(file)), signature) };
    };

    it('writes both parameters as string_values, and reads them back the same', () => {
      const { config, file, again } = roundTrip({ concurrency: { maxInFlight: 12, adaptive: true } });
      assert.deepEqual(file.parameters?.max_inflight_requests, { string_value: '12' });
      assert.deepEqual(file.parameters?.adaptive_concurrency, { string_value: '1' });
      assert.deepEqual(again, config);
    });

    it('writes neither when the model sets neither', () => {
      const { config, file, again } = roundTrip({});
      assert.equal(file.parameters?.max_inflight_requests, undefined);
      assert.equal(file.parameters?.adaptive_concurrency, undefined);
      assert.deepEqual(again, config);
    });
  });
});

// A real third-party CNN (PaddleOCR text-direction classifier) through the engine, checked against
// onnxruntime-node run directly in this process on the same input.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import * as ort from 'onnxruntime-node';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { OCR_MODELS, assertClose, failIfWorkersOutliveTests, pattern, runtimeOptions, tensor, runOne } from './onnx-fixtures.js';

Logger.overrideLogger(false);

const CLS_MODEL = join(OCR_MODELS, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
const OUTPUT = 'softmax_0.tmp_0';
const IMAGE = 3 * 48 * 192;

describe('PaddleOCR cls model through OnnxRuntimeEngine', { timeout: 60_000 }, () => {
  const engine = new OnnxRuntimeEngine();
  let direct: ort.InferenceSession;

  before(async () => {
    await engine.load(runtimeKey('ocr_cls'), CLS_MODEL, runtimeOptions({ instanceCount: 2 }));
    direct = await ort.InferenceSession.create(CLS_MODEL, { executionProviders: ['cpu'], intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  });

  after(async () => {
    await direct?.release();
    await engine.onApplicationShutdown();
    failIfWorkersOutliveTests();
  });

  for (const batch of [1, 3]) {
    it(`batch of ${batch}: same probabilities as onnxruntime-node in-process (within 1e-5)`, async () => {
      // Different deterministic "images" per batch row, in the [-1, 1] range the model is normalised to.
      const images = new Float32Array(batch * IMAGE);
      for (let b = 0; b < batch; b++) images.set(pattern(IMAGE, b * 1.7), b * IMAGE);

      const expected = await direct.run({ x: new ort.Tensor('float32', images.slice(), [batch, 3, 48, 192]) });
      const reference = expected[OUTPUT]!;
      assert.deepEqual(reference.dims, [batch, 2]);

      const [output] = (await runOne(engine, runtimeKey('ocr_cls'), [tensor('x', 'FP32', [batch, 3, 48, 192], images)], [OUTPUT])).outputs;

      assert.ok(output);
      assert.equal(output.name, OUTPUT);
      assert.equal(output.datatype, 'FP32');
      assert.deepEqual(output.shape, [batch, 2]);
      assert.ok(output.data instanceof Float32Array);
      assertClose(output.data, reference.data as Float32Array, 1e-5);
      // A meaningful output: each row is a probability distribution.
      for (let b = 0; b < batch; b++) {
        assert.ok(Math.abs(output.data[2 * b]! + output.data[2 * b + 1]! - 1) < 1e-4, `row ${b} sums to 1`);
      }
    });
  }

  it('a different input gives a different output (the comparison above is not vacuous)', async () => {
    const [a] = (await runOne(engine, runtimeKey('ocr_cls'), [tensor('x', 'FP32', [1, 3, 48, 192], pattern(IMAGE, 0))], [OUTPUT])).outputs;
    const [b] = (await runOne(engine, runtimeKey('ocr_cls'), [tensor('x', 'FP32', [1, 3, 48, 192], new Float32Array(IMAGE).fill(-0.9))], [OUTPUT])).outputs;
    const diff = Math.abs((a!.data as Float32Array)[0]! - (b!.data as Float32Array)[0]!);
    assert.ok(diff > 1e-4, `outputs differ by ${diff}`);
  });
});

// OnnxRuntimeEngine.load on real .onnx files: the signature it reads, provider fallback, bad files.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { classifierModel } from '../../../scripts/build-models.js';
import { DATATYPES } from '../../../src/domain/shared/datatype.js';
import { OCR_MODELS, projectModelDirectory, failIfWorkersOutliveTests, liveSessionWorkers, modelDirectory, runtimeOptions, statusOf, tensor, runOne } from './onnx-fixtures.js';

Logger.overrideLogger(false);

describe('OnnxRuntimeEngine.load', { timeout: 60_000 }, () => {
  const engine = new OnnxRuntimeEngine();
  let models: Awaited<ReturnType<typeof modelDirectory>>;

  before(async () => {
    models = await projectModelDirectory();
  });

  after(async () => {
    await engine.onApplicationShutdown();
    await models.remove();
    failIfWorkersOutliveTests();
  });

  describe('reports the signature the model file declares', () => {
    it('classifier: names, datatypes, -1 for the symbolic batch dim, provider cpu', async () => {
      const loaded = await engine.load(runtimeKey('classifier/1'), models.path('classifier'), runtimeOptions());
      assert.deepEqual(loaded, {
        signature: {
          inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
          outputs: [
            { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
            { name: 'label', datatype: 'INT64', shape: [-1] },
          ],
        },
        executionProvider: 'cpu',
      });
      assert.deepEqual(statusOf(engine, runtimeKey('classifier/1')), { key: 'classifier/1', instances: 1, busy: 0, queued: 0, executionProvider: 'cpu', lostInstances: 0, restartedInstances: 0 });
    });

    it('multi_io: BOOL and BYTES inputs and outputs, in the file order', async () => {
      const { signature } = await engine.load(runtimeKey('multi_io:1'), models.path('multi_io'), runtimeOptions());
      assert.deepEqual(signature, {
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [-1, 3] },
          { name: 'counts', datatype: 'INT64', shape: [-1, 2] },
          { name: 'mask', datatype: 'BOOL', shape: [-1, 3] },
          { name: 'text', datatype: 'BYTES', shape: [-1, 1] },
        ],
        outputs: [
          { name: 'scaled', datatype: 'FP32', shape: [-1, 3] },
          { name: 'masked', datatype: 'FP32', shape: [-1, 3] },
          { name: 'total', datatype: 'INT64', shape: [-1, 1] },
          { name: 'inverted_mask', datatype: 'BOOL', shape: [-1, 3] },
          { name: 'text_echo', datatype: 'BYTES', shape: [-1, 1] },
        ],
      });
    });

    it('identity_all_types: every protocol datatype, two symbolic dims each', async () => {
      const { signature } = await engine.load(runtimeKey('identity:1'), models.path('identity_all_types'), runtimeOptions());
      assert.deepEqual(
        signature.inputs,
        DATATYPES.map((datatype) => ({ name: `in_${datatype.toLowerCase()}`, datatype, shape: [-1, -1] })),
      );
      assert.deepEqual(
        signature.outputs,
        DATATYPES.map((datatype) => ({ name: `out_${datatype.toLowerCase()}`, datatype, shape: [-1, -1] })),
      );
    });

    it('static_shape: fixed dims stay as they are', async () => {
      const { signature } = await engine.load(runtimeKey('static:1'), models.path('static_shape'), runtimeOptions());
      assert.deepEqual(signature, {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3] }],
        outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 3] }],
      });
    });

    it('a third-party model (PaddleOCR cls): converter-named symbolic dims become -1', async () => {
      const { signature, executionProvider } = await engine.load(runtimeKey('ocr_cls:1'), join(OCR_MODELS, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), runtimeOptions());
      assert.equal(executionProvider, 'cpu');
      assert.deepEqual(signature, {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }],
        outputs: [{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [-1, 2] }],
      });
    });
  });

  describe('execution providers', () => {
    it('falls back to cpu when tensorrt and cuda are requested on a machine without them', async () => {
      const key = runtimeKey('classifier:gpu-requested');
      const loaded = await engine.load(key, models.path('classifier'), runtimeOptions({ executionProviders: ['tensorrt', 'cuda', 'cpu'] }));
      assert.equal(loaded.executionProvider, 'cpu');
      assert.equal(statusOf(engine, key)?.executionProvider, 'cpu');
      assert.equal(loaded.signature.inputs[0]?.name, 'input');
      // The fallback session really serves.
      const [label] = (await runOne(engine, key, [tensor('input', 'FP32', [1, 4], Float32Array.of(5.1, 3.5, 1.4, 0.2))], ['label'])).outputs;
      assert.deepEqual(label?.data, BigInt64Array.of(0n));
    });

    it('falls back to cpu when only a GPU provider is requested', async () => {
      const loaded = await engine.load(runtimeKey('classifier:cuda-only'), models.path('classifier'), runtimeOptions({ executionProviders: ['cuda'] }));
      assert.equal(loaded.executionProvider, 'cpu');
    });
  });

  describe('a model file that cannot be loaded', () => {
    let corrupt: string;
    let truncated: string;

    before(async () => {
      corrupt = models.path('corrupt');
      await writeFile(corrupt, randomBytes(64 * 1024));
      truncated = models.path('truncated');
      const whole = classifierModel();
      await writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    });

    const cases: [string, () => string][] = [
      ['random bytes', () => corrupt],
      ['a truncated model', () => truncated],
      ['a missing file', () => models.path('does-not-exist')],
    ];
    for (const [what, file] of cases) {
      it(`${what}: load rejects with an explaining Error, leaves no pool and no worker`, async () => {
        const workersBefore = liveSessionWorkers();
        const key = runtimeKey(`broken:${what}`);
        await assert.rejects(engine.load(key, file(), runtimeOptions({ instanceCount: 2 })), (error: unknown) => {
          assert.ok(error instanceof Error);
          // onnxruntime's reason reaches the caller, naming the file.
          assert.ok(error.message.includes(file()), error.message);
          assert.match(error.message, /fail|exist|pars|protobuf|invalid/i);
          return true;
        });
        assert.equal(statusOf(engine, key), undefined);
        assert.equal(liveSessionWorkers(), workersBefore, 'the session workers of the failed load have ended');
        // The key is free again: nothing half-registered blocks a later load.
        const retried = await engine.load(key, models.path('static_shape'), runtimeOptions());
        assert.equal(retried.signature.inputs[0]?.name, 'x');
        await engine.unload(key);
      });
    }
  });
});

// instanceCount: how many sessions serve one model, observed through status() while a slow model runs.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '@nestjs/common';
import * as ort from 'onnxruntime-node';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { heavyModel } from '../../../scripts/build-models.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import { assertClose, failIfWorkersOutliveTests, modelDirectory, pattern, runtimeOptions, statusOf, statusWhile, tensor, runOne } from './onnx-fixtures.js';

Logger.overrideLogger(false);

// About 0.3 s per run on one thread of the dev box (4096 x 800 takes ~2 s): long enough for
// status() to see a run in flight, with no timing asserted anywhere.
const HEAVY_ROWS = 1024;
const HEAVY_LAYERS = 480;

describe('OnnxRuntimeEngine instances', { timeout: 60_000 }, () => {
  let models: Awaited<ReturnType<typeof modelDirectory>>;
  /** Two distinct inputs and their outputs computed by onnxruntime-node directly, with the engine's settings. */
  const inputs = [pattern(256, 0), pattern(256, 2.5)];
  const expected: Float32Array[] = [];
  const heavyInput = (i: number): Tensor[] => [tensor('x', 'FP32', [1, 256], inputs[i]!.slice())];

  before(async () => {
    const bytes = heavyModel(HEAVY_ROWS, HEAVY_LAYERS);
    models = await modelDirectory({ heavy: bytes });
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    for (const input of inputs) {
      const { y } = await session.run({ x: new ort.Tensor('float32', input.slice(), [1, 256]) });
      expected.push(y!.data as Float32Array);
    }
    await session.release();
    // The two references differ, so a swapped answer would be caught.
    assert.ok(expected[0]!.some((v, i) => Math.abs(v - expected[1]![i]!) > 1e-3));
  });

  after(async () => {
    await models.remove();
    failIfWorkersOutliveTests();
  });

  describe('with 2 instances', () => {
    const engine = new OnnxRuntimeEngine();
    before(() => engine.load(runtimeKey('heavy'), models.path('heavy'), runtimeOptions({ instanceCount: 2 })));
    after(() => engine.onApplicationShutdown());

    it('status shows 2 idle instances', () => {
      assert.deepEqual(statusOf(engine, runtimeKey('heavy')), { key: 'heavy/1', instances: 2, busy: 0, queued: 0, executionProvider: 'cpu', lostInstances: 0, restartedInstances: 0 });
    });

    it('two concurrent runs both run at once (busy 2, nothing queued) and each gets its own answer', async () => {
      const first = runOne(engine, runtimeKey('heavy'), heavyInput(0), ['y']);
      const second = runOne(engine, runtimeKey('heavy'), heavyInput(1), ['y']);
      const seen = await statusWhile(engine, runtimeKey('heavy'), Promise.all([first, second]));

      assert.ok(seen.some((s) => s.busy === 2 && s.queued === 0), `busy 2 was never seen: ${JSON.stringify(seen.slice(0, 3))}`);
      assert.ok(seen.every((s) => s.queued === 0 && s.instances === 2), 'with a free instance nothing waits');
      const [{ outputs: [a] }, { outputs: [b] }] = await Promise.all([first, second]);
      assertClose(a!.data as Float32Array, expected[0]!);
      assertClose(b!.data as Float32Array, expected[1]!);
      assert.deepEqual(statusOf(engine, runtimeKey('heavy')), { key: 'heavy/1', instances: 2, busy: 0, queued: 0, executionProvider: 'cpu', lostInstances: 0, restartedInstances: 0 });
    });

    it('a third concurrent run waits for one of the two instances and completes', async () => {
      const runs = [0, 1, 0].map((i) => runOne(engine, runtimeKey('heavy'), heavyInput(i), ['y']));
      const seen = await statusWhile(engine, runtimeKey('heavy'), Promise.all(runs));

      assert.ok(seen.some((s) => s.busy === 2 && s.queued === 1), 'the third run was queued behind two busy instances');
      assert.ok(seen.every((s) => s.busy <= 2 && s.queued <= 1));
      const outputs = await Promise.all(runs);
      outputs.forEach(({ outputs: [y] }, n) => assertClose(y!.data as Float32Array, expected[[0, 1, 0][n]!]!));
    });
  });

  describe('with 1 instance', () => {
    const engine = new OnnxRuntimeEngine();
    before(() => engine.load(runtimeKey('heavy'), models.path('heavy'), runtimeOptions({ instanceCount: 1 })));
    after(() => engine.onApplicationShutdown());

    it('status shows 1 instance', () => {
      assert.deepEqual(statusOf(engine, runtimeKey('heavy')), { key: 'heavy/1', instances: 1, busy: 0, queued: 0, executionProvider: 'cpu', lostInstances: 0, restartedInstances: 0 });
    });

    it('a second concurrent run is queued while the first runs, then runs, and both answers are right', async () => {
      const first = runOne(engine, runtimeKey('heavy'), heavyInput(0), ['y']);
      const second = runOne(engine, runtimeKey('heavy'), heavyInput(1), ['y']);
      const seen = await statusWhile(engine, runtimeKey('heavy'), Promise.all([first, second]));

      assert.ok(seen.some((s) => s.busy === 1 && s.queued === 1), 'the second run waited in the queue');
      assert.ok(seen.every((s) => s.busy <= 1), 'never more than one run on one instance');
      const [{ outputs: [a] }, { outputs: [b] }] = await Promise.all([first, second]);
      assertClose(a!.data as Float32Array, expected[0]!);
      assertClose(b!.data as Float32Array, expected[1]!);
      assert.deepEqual(statusOf(engine, runtimeKey('heavy')), { key: 'heavy/1', instances: 1, busy: 0, queued: 0, executionProvider: 'cpu', lostInstances: 0, restartedInstances: 0 });
    });

    it('queued runs are served in arrival order', async () => {
      const order: number[] = [];
      const runs = [0, 1, 0, 1].map((i, n) => runOne(engine, runtimeKey('heavy'), heavyInput(i), ['y']).then((out) => (order.push(n), out)));
      const outputs = await Promise.all(runs);
      assert.deepEqual(order, [0, 1, 2, 3]);
      outputs.forEach(({ outputs: [y] }, n) => assertClose(y!.data as Float32Array, expected[n % 2]!));
    });
  });
});

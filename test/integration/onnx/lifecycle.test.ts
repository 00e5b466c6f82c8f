// unload and shutdown: calls in flight, calls waiting, and the worker processes that must really end.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '@nestjs/common';
import * as ort from 'onnxruntime-node';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { classifierModel, heavyModel, staticShapeModel } from '../../../scripts/build-models.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import {
  assertClose,
  assertRejectsWithCode,
  failIfWorkersOutliveTests,
  liveSessionWorkers,
  modelDirectory,
  osThreads,
  pattern,
  runtimeOptions,
  statusOf,
  runOne,
  tensor,
} from './onnx-fixtures.js';

Logger.overrideLogger(false);

const classifierInput = (): Tensor[] => [tensor('input', 'FP32', [1, 4], Float32Array.of(5.1, 3.5, 1.4, 0.2))];
const staticInput = (): Tensor[] => [tensor('x', 'FP32', [2, 3], Float32Array.of(0, 1, 2, 3, 4, 5))];

describe('OnnxRuntimeEngine lifecycle', { timeout: 60_000 }, () => {
  let models: Awaited<ReturnType<typeof modelDirectory>>;
  const heavyX = pattern(256, 1);
  let heavyExpected: Float32Array;
  const heavyInput = (): Tensor[] => [tensor('x', 'FP32', [1, 256], heavyX.slice())];

  before(async () => {
    const heavy = heavyModel(1024, 480);
    models = await modelDirectory({ classifier: classifierModel(), static_shape: staticShapeModel(), heavy });
    const session = await ort.InferenceSession.create(heavy, { executionProviders: ['cpu'], intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
    const { y } = await session.run({ x: new ort.Tensor('float32', heavyX.slice(), [1, 256]) });
    heavyExpected = y!.data as Float32Array;
    await session.release();
  });

  after(async () => {
    await models.remove();
    failIfWorkersOutliveTests();
  });

  describe('unload', () => {
    const engine = new OnnxRuntimeEngine();
    after(() => engine.onApplicationShutdown());

    it('afterwards run rejects with REGISTRY.VERSION_NOT_READY, status drops the key, the workers have ended', async () => {
      const workersBefore = liveSessionWorkers();
      await engine.load(runtimeKey('classifier'), models.path('classifier'), runtimeOptions({ instanceCount: 2 }));
      assert.equal(liveSessionWorkers(), workersBefore + 2, 'one worker process per instance while loaded');
      (await runOne(engine, runtimeKey('classifier'), classifierInput(), ['label'])).outputs;

      await engine.unload(runtimeKey('classifier'));

      assert.equal(statusOf(engine, runtimeKey('classifier')), undefined);
      assert.equal(liveSessionWorkers(), workersBefore, 'both worker processes have exited');
      await assertRejectsWithCode(runOne(engine, runtimeKey('classifier'), classifierInput(), ['label']), 'REGISTRY.VERSION_NOT_READY', /classifier/);
    });

    it('unloading a key that is not loaded is a no-op and leaves the others serving', async () => {
      await engine.load(runtimeKey('static'), models.path('static_shape'), runtimeOptions());
      await engine.unload(runtimeKey('not-loaded'));
      await engine.unload(runtimeKey('static'));
      await engine.unload(runtimeKey('static'));
      assert.equal(statusOf(engine, runtimeKey('static')), undefined);
    });

    it('a key can be loaded again after unload, and serves', async () => {
      await engine.load(runtimeKey('static'), models.path('static_shape'), runtimeOptions());
      await engine.unload(runtimeKey('static'));
      await engine.load(runtimeKey('static'), models.path('static_shape'), runtimeOptions());
      const [y] = (await runOne(engine, runtimeKey('static'), staticInput(), ['y'])).outputs;
      assert.deepEqual(y?.data, Float32Array.of(1, 2, 3, 4, 5, 6));
      await engine.unload(runtimeKey('static'));
    });

    it('10 load/run/unload cycles leave no worker process and no thread behind', async () => {
      const cycle = async () => {
        // Two intra-op threads per session: each session owns a thread pool, in its worker process.
        await engine.load(runtimeKey('cycled'), models.path('classifier'), runtimeOptions({ instanceCount: 2, intraOpThreads: 2 }));
        await Promise.all([runOne(engine, runtimeKey('cycled'), classifierInput(), ['label']), runOne(engine, runtimeKey('cycled'), classifierInput(), ['label'])]);
        await engine.unload(runtimeKey('cycled'));
      };
      await cycle(); // warm-up: lazily created process-wide threads (libuv pool etc.) exist from here on
      const workersBefore = liveSessionWorkers();
      const threadsBefore = osThreads();

      for (let i = 0; i < 10; i++) await cycle();

      assert.equal(liveSessionWorkers(), workersBefore, 'every session worker process has exited');
      if (threadsBefore !== undefined) {
        // A leak would be at least 10 cycles x 2 instances threads; allow a little for unrelated lazy threads.
        const threadsAfter = osThreads()!;
        assert.ok(threadsAfter <= threadsBefore + 2, `OS threads grew from ${threadsBefore} to ${threadsAfter}`);
      }
      assert.equal(statusOf(engine, runtimeKey('cycled')), undefined);
    });

    it('a running call completes, a queued call is rejected, a call made while unloading is refused', async () => {
      const workersBefore = liveSessionWorkers();
      await engine.load(runtimeKey('heavy'), models.path('heavy'), runtimeOptions({ instanceCount: 1 }));
      try {
        const running = runOne(engine, runtimeKey('heavy'), heavyInput(), ['y']);
        const queued = runOne(engine, runtimeKey('heavy'), heavyInput(), ['y']);
        // Observed without awaiting, so an early rejection is not reported as unhandled.
        const queuedOutcome = queued.then(() => 'it completed', (error: unknown) => error);
        const statusBeforeUnload = statusOf(engine, runtimeKey('heavy'));

        const unloading = engine.unload(runtimeKey('heavy'));
        assert.equal(statusOf(engine, runtimeKey('heavy')), undefined, 'the key leaves status as soon as unload starts');
        await assertRejectsWithCode(runOne(engine, runtimeKey('heavy'), heavyInput(), ['y']), 'REGISTRY.VERSION_NOT_READY');

        const { outputs: [y] } = await running;
        assertClose(y!.data as Float32Array, heavyExpected);
        const rejection = await queuedOutcome;
        assert.ok(rejection instanceof DomainError, `the queued call was not rejected: ${String(rejection)}`);
        assert.match(rejection.message, /unload/);
        await unloading;
        assert.equal(liveSessionWorkers(), workersBefore);
        // What status said just before unload: one call running, one waiting for the instance.
        assert.deepEqual(statusBeforeUnload, { key: 'heavy/1', instances: 1, busy: 1, queued: 1, executionProvider: 'cpu', lostInstances: 0, restartedInstances: 0 });
      } finally {
        await engine.unload(runtimeKey('heavy'));
      }
    });

    it('a call dropped from the queue by unload is reported like a call made after unload: REGISTRY.VERSION_NOT_READY', async () => {
      // The client cannot tell the two apart and should retry both (503), not see a 500 for one of them.
      await engine.load(runtimeKey('heavy'), models.path('heavy'), runtimeOptions({ instanceCount: 1 }));
      try {
        const calls = [0, 1, 2].map(() => runOne(engine, runtimeKey('heavy'), heavyInput(), ['y']));
        // The last of three calls on one instance is certainly still waiting when unload begins.
        const lastOutcome = calls[2]!.then(() => 'it completed', (error: unknown) => error);
        const others = Promise.allSettled(calls.slice(0, 2));
        await engine.unload(runtimeKey('heavy'));
        await others;
        const rejection = await lastOutcome;
        assert.ok(rejection instanceof DomainError, `the waiting call was not rejected: ${String(rejection)}`);
        assert.equal(rejection.code, 'REGISTRY.VERSION_NOT_READY', rejection.message);
      } finally {
        await engine.unload(runtimeKey('heavy'));
      }
    });
  });

  describe('load twice', () => {
    const engine = new OnnxRuntimeEngine();
    after(() => engine.onApplicationShutdown());

    it('loading a key that is loaded rejects and keeps the loaded one serving', async () => {
      await engine.load(runtimeKey('static'), models.path('static_shape'), runtimeOptions());
      await assert.rejects(engine.load(runtimeKey('static'), models.path('classifier'), runtimeOptions()), /already loaded/);
      const [y] = (await runOne(engine, runtimeKey('static'), staticInput(), ['y'])).outputs;
      assert.deepEqual(y?.data, Float32Array.of(1, 2, 3, 4, 5, 6));
      await engine.unload(runtimeKey('static'));
    });

    it('two concurrent loads of one key: one wins, and unload leaves no worker behind', async () => {
      const workersBefore = liveSessionWorkers();
      const outcomes = await Promise.allSettled([
        engine.load(runtimeKey('raced'), models.path('static_shape'), runtimeOptions()),
        engine.load(runtimeKey('raced'), models.path('static_shape'), runtimeOptions()),
      ]);
      assert.deepEqual(outcomes.map((o) => o.status).sort(), ['fulfilled', 'rejected'], 'exactly one of the two loads succeeds');
      assert.equal(statusOf(engine, runtimeKey('raced'))?.instances, 1);
      await engine.unload(runtimeKey('raced'));
      assert.equal(liveSessionWorkers(), workersBefore, 'no session worker of the losing load is left running');
    });
  });

  describe('onApplicationShutdown', () => {
    it('unloads every model: status is empty, runs are refused, every worker has ended', async () => {
      const engine = new OnnxRuntimeEngine();
      const workersBefore = liveSessionWorkers();
      await engine.load(runtimeKey('classifier'), models.path('classifier'), runtimeOptions({ instanceCount: 2 }));
      await engine.load(runtimeKey('static'), models.path('static_shape'), runtimeOptions());
      await engine.load(runtimeKey('heavy'), models.path('heavy'), runtimeOptions());
      assert.deepEqual(engine.status().map((s) => s.key.toString()).sort(), ['classifier/1', 'heavy/1', 'static/1']);
      assert.equal(liveSessionWorkers(), workersBefore + 4);
      const running = runOne(engine, runtimeKey('heavy'), heavyInput(), ['y']);

      await engine.onApplicationShutdown();

      assert.deepEqual(engine.status(), []);
      assert.equal(liveSessionWorkers(), workersBefore, 'every worker process has exited');
      // The call that was running when shutdown began still got its answer.
      const { outputs: [y] } = await running;
      assertClose(y!.data as Float32Array, heavyExpected);
      for (const [key, input] of [['classifier', classifierInput()], ['static', staticInput()]] as const) {
        await assertRejectsWithCode(runOne(engine, runtimeKey(key), input, ['y']), 'REGISTRY.VERSION_NOT_READY', new RegExp(key));
      }
    });
  });
});

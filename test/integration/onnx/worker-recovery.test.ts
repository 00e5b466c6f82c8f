// A session worker that dies while serving: its calls fail at once with a clear error, the other
// instances go on, and the pool replaces it with a new worker that reloads the model. The worker
// dies from inside, as the fault injection makes it (process.exit in the worker, before its run):
// terminating a thread from outside in the middle of a native run can abort the whole process.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import { heavyModel } from '../../../scripts/build-models.js';
import { SessionWorkerPool } from '../../../src/infra/onnx/session-worker-pool.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import { failIfWorkersOutliveTests, modelDirectory, pattern, tensor } from './onnx-fixtures.js';

// About 0.3 s per run: the call that crashes its worker is sent while the other worker computes.
const HEAVY_ROWS = 1024;
const HEAVY_LAYERS = 480;
/** What the fault injection asks of a run: the worker exits (code 70) instead of running it. */
const CRASH = { crash: true };

/** The pool's worker threads (private: a test reads their ids). */
const threadsOf = (pool: SessionWorkerPool): Worker[] => (pool as unknown as { workers: { thread: Worker }[] }).workers.map((w) => w.thread);

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    if (condition()) return;
    await sleep(5);
  }
  throw new Error(`never: ${what}`);
}

describe('SessionWorkerPool: a worker that dies', { timeout: 60_000 }, () => {
  let models: Awaited<ReturnType<typeof modelDirectory>>;
  let pool: SessionWorkerPool;
  const input = (): Tensor[] => [tensor('x', 'FP32', [1, 256], pattern(256, 1))];

  before(async () => {
    models = await modelDirectory({ heavy: heavyModel(HEAVY_ROWS, HEAVY_LAYERS) });
    ({ pool } = await SessionWorkerPool.start(
      { modelPath: models.path('heavy'), executionProviders: ['cpu'], intraOpThreads: 1, interOpThreads: 1, allowSpinning: false },
      2,
    ));
  });

  after(async () => {
    await pool.release();
    await models.remove();
    failIfWorkersOutliveTests();
  });

  it('fails the call it was running with the reason, at once, while the other instance serves', async () => {
    // One worker computes; the call that kills its worker goes to the other, idle one.
    const computing = pool.run(input(), ['y']);
    const crashing = pool.run(input(), ['y'], undefined, CRASH);
    await assert.rejects(crashing, /the worker running this model exited with code 70/);
    assert.equal(pool.lostWorkers, 1);
    assert.deepEqual((await computing).outputs[0]!.shape, [1, 256], 'the other instance answers its call');
    // The survivor answers while the replacement loads (or after: either way the call succeeds).
    const { outputs } = await pool.run(input(), ['y']);
    assert.deepEqual(outputs[0]!.shape, [1, 256]);
  });

  it('replaces the dead worker with a new one that loads the model and serves', async () => {
    await until(() => pool.restartedWorkers === 1 && pool.instances === 2, 'the replacement is serving');
    const threads = threadsOf(pool);
    assert.equal(new Set(threads.map((t) => t.threadId)).size, 2);
    // Both instances busy at once: the replacement takes work.
    const runs = [pool.run(input(), ['y']), pool.run(input(), ['y'])];
    await until(() => pool.busy === 2, 'both workers busy');
    for (const { outputs } of await Promise.all(runs)) assert.deepEqual(outputs[0]!.shape, [1, 256]);
  });

  it('when every worker dies, the waiting calls wait for the replacements instead of failing', async () => {
    // Two crashing calls at once: one to each worker (each takes the least loaded one).
    const crashes = [pool.run(input(), ['y'], undefined, CRASH), pool.run(input(), ['y'], undefined, CRASH)];
    await Promise.all(crashes.map((crash) => assert.rejects(crash, /exited with code 70/)));
    assert.equal(pool.lostWorkers, 3);
    const { outputs } = await pool.run(input(), ['y']);
    assert.deepEqual(outputs[0]!.shape, [1, 256]);
    await until(() => pool.restartedWorkers === 3 && pool.instances === 2, 'both replaced');
  });
});

// A session worker that dies while serving: its calls fail at once with a clear error, the other
// instances go on, and the pool replaces it with a new worker that reloads the model.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { heavyModel } from '../../../scripts/build-models.js';
import { SessionWorkerPool } from '../../../src/infra/onnx/session-worker-pool.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import { failIfWorkersOutliveTests, modelDirectory, pattern, tensor } from './onnx-fixtures.js';

// About 0.3 s per run: long enough to kill a worker in the middle of one (no timing is asserted).
const HEAVY_ROWS = 1024;
const HEAVY_LAYERS = 480;

/** The pool's worker processes (private: a test reaches in to kill one, as a crash would). */
const processesOf = (pool: SessionWorkerPool): ChildProcess[] => (pool as unknown as { workers: { child: ChildProcess }[] }).workers.map((w) => w.child);

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
      { modelPath: models.path('heavy'), executionProviders: ['cpu'], intraOpThreads: 1, interOpThreads: 1, allowSpinning: false, logSeverityLevel: 2 },
      2,
      (line) => process.stderr.write(`${line}\n`),
    ));
  });

  after(async () => {
    await pool.release();
    await models.remove();
    failIfWorkersOutliveTests();
  });

  it('fails the call it was running with the reason, at once, while the other instance serves', async () => {
    const running = pool.run([input()], ['y']);
    await until(() => pool.busy === 1, 'one worker busy');
    const busy = processesOf(pool).find((_, i) => (pool as unknown as { workers: { running: Map<number, unknown> }[] }).workers[i]!.running.size > 0)!;
    busy.kill('SIGKILL');
    await assert.rejects(running, /the worker running this model was ended by SIGKILL/);
    assert.equal(pool.lostWorkers, 1);
    // The survivor answers while the replacement loads (or after: either way the call succeeds).
    const { outputs } = await pool.run([input()], ['y']);
    assert.deepEqual(outputs[0]![0]!.shape, [1, 256]);
  });

  it('replaces the dead worker with a new one that loads the model and serves', async () => {
    await until(() => pool.restartedWorkers === 1 && pool.instances === 2, 'the replacement is serving');
    assert.equal(new Set(processesOf(pool).map((p) => p.pid)).size, 2);
    // Both instances busy at once: the replacement takes work.
    const runs = [pool.run([input()], ['y']), pool.run([input()], ['y'])];
    await until(() => pool.busy === 2, 'both workers busy');
    for (const { outputs } of await Promise.all(runs)) assert.deepEqual(outputs[0]![0]!.shape, [1, 256]);
  });

  it('when every worker dies, the waiting calls wait for the replacements instead of failing', async () => {
    for (const worker of processesOf(pool)) worker.kill('SIGKILL');
    await until(() => pool.lostWorkers === 3, 'both lost');
    const { outputs } = await pool.run([input()], ['y']);
    assert.deepEqual(outputs[0]![0]!.shape, [1, 256]);
    await until(() => pool.restartedWorkers === 3 && pool.instances === 2, 'both replaced');
  });
});

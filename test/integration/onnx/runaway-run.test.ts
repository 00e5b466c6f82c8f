// A run that does not end (a Loop whose trip count is an input, as a generative model's max_length
// is): past its time limit it fails, the worker process computing it is killed and replaced, and
// unload, shutdown and the server's own end never wait for it longer than that.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { loopModel } from '../../../scripts/build-models.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { childProcessesOf, isRunning } from '../../../bench/child-processes.js';
import { assertRejectsWithCode, failIfWorkersOutliveTests, liveSessionWorkers, modelDirectory, runtimeOptions, statusOf, tensor, runOne } from './onnx-fixtures.js';

Logger.overrideLogger(false);

/** About a microsecond per turn: 10^12 turns is weeks. */
const FOREVER = 10n ** 12n;
const loopInput = (turns: bigint, x = 1): Tensor[] => [tensor('trip_count', 'INT64', [1], BigInt64Array.of(turns)), tensor('x', 'FP32', [1], Float32Array.of(x))];
const HOST = fileURLToPath(new URL('../../support/runaway-host.js', import.meta.url));

/** Polls a condition that only the OS can tell (a process has gone); fails after ~10 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (condition()) return;
    await sleep(10);
  }
  throw new Error(`never: ${what}`);
}

describe('a run that does not end', { timeout: 120_000 }, () => {
  let models: Awaited<ReturnType<typeof modelDirectory>>;
  const engine = new OnnxRuntimeEngine();
  /** The worker processes the engine started for `key` since `before` (this test process's children). */
  const workersOf = (before: readonly number[]) => childProcessesOf(process.pid).filter((pid) => !before.includes(pid));

  before(async () => {
    models = await modelDirectory({ loop: loopModel() });
  });

  after(async () => {
    await engine.onApplicationShutdown();
    await models.remove();
    failIfWorkersOutliveTests();
  });

  it('computes y = x + trip_count when it ends', async () => {
    await engine.load(runtimeKey('loop'), models.path('loop'), runtimeOptions());
    try {
      const [y] = (await runOne(engine, runtimeKey('loop'), loopInput(41n), ['y'])).outputs;
      assert.deepEqual(y!.data, Float32Array.of(42));
    } finally {
      await engine.unload(runtimeKey('loop'));
    }
  });

  it('past its time limit: DEADLINE_EXCEEDED, its worker process is gone, and a replacement serves the next call', async () => {
    const others = childProcessesOf(process.pid);
    await engine.load(runtimeKey('loop'), models.path('loop'), runtimeOptions());
    try {
      const [worker] = workersOf(others);
      assert.ok(worker, 'the instance is a child process');
      await assertRejectsWithCode(runOne(engine, runtimeKey('loop'), loopInput(FOREVER), ['y'], { timeLimitMs: 300 }), 'INFERENCE.DEADLINE_EXCEEDED', /time limit of 300 ms: its instance was stopped and is being replaced/);
      assert.equal(isRunning(worker), false, 'the process that computed the run has ended: no CPU is spent on it');

      const [y] = (await runOne(engine, runtimeKey('loop'), loopInput(2n), ['y'])).outputs;
      assert.deepEqual(y!.data, Float32Array.of(3));
      const status = statusOf(engine, runtimeKey('loop'))!;
      assert.deepEqual([status.instances, status.lostInstances, status.restartedInstances], [1, 1, 1]);
      assert.equal(workersOf(others).length, 1, 'one instance, one process');
    } finally {
      await engine.unload(runtimeKey('loop'));
    }
  });

  it('the calls waiting behind it run on the replacement; one whose own limit passes while it waits fails alone', async () => {
    await engine.load(runtimeKey('loop'), models.path('loop'), runtimeOptions());
    try {
      const runaway = runOne(engine, runtimeKey('loop'), loopInput(FOREVER), ['y'], { timeLimitMs: 1000 });
      const runawayOutcome = runaway.then(() => 'it ended', (error: unknown) => error);
      // Behind it on its instance: one handed to the worker, one still in the pool.
      const [behind, waiting, impatient] = [
        runOne(engine, runtimeKey('loop'), loopInput(5n), ['y']),
        runOne(engine, runtimeKey('loop'), loopInput(6n), ['y']),
        runOne(engine, runtimeKey('loop'), loopInput(7n), ['y'], { timeLimitMs: 50 }),
      ];
      await assertRejectsWithCode(impatient, 'INFERENCE.DEADLINE_EXCEEDED', /time limit of 50 ms$/);
      assert.equal(statusOf(engine, runtimeKey('loop'))!.lostInstances, 0, 'a call that had not started stops no instance');
      assert.deepEqual((await behind).outputs[0]!.data, Float32Array.of(6));
      assert.deepEqual((await waiting).outputs[0]!.data, Float32Array.of(7));
      const error = await runawayOutcome;
      assert.match((error as Error).message, /time limit of 1000 ms/);
      assert.equal(statusOf(engine, runtimeKey('loop'))!.lostInstances, 1);
    } finally {
      await engine.unload(runtimeKey('loop'));
    }
  });

  it('unload during it returns once the limit has stopped it, and leaves no worker process', async () => {
    const workersBefore = liveSessionWorkers();
    await engine.load(runtimeKey('loop'), models.path('loop'), runtimeOptions({ instanceCount: 2 }));
    const runaway = runOne(engine, runtimeKey('loop'), loopInput(FOREVER), ['y'], { timeLimitMs: 500 });
    const outcome = runaway.then(() => 'it ended', (error: unknown) => error);
    await engine.unload(runtimeKey('loop'));
    assert.equal(liveSessionWorkers(), workersBefore, 'no worker process is left: not the runaway one, not a replacement');
    assert.match(String(await outcome), /time limit of 500 ms/);
  });

  it('the engine shutdown returns too, with every worker process ended', async () => {
    const workersBefore = liveSessionWorkers();
    const shutdownEngine = new OnnxRuntimeEngine();
    await shutdownEngine.load(runtimeKey('loop'), models.path('loop'), runtimeOptions());
    const outcome = runOne(shutdownEngine, runtimeKey('loop'), loopInput(FOREVER), ['y'], { timeLimitMs: 500 }).then(() => 'it ended', (error: unknown) => error);
    await shutdownEngine.onApplicationShutdown();
    assert.equal(liveSessionWorkers(), workersBefore);
    assert.match(String(await outcome), /time limit/);
  });

  for (const [how, end] of [
    ['exits (process.exit, as the shutdown grace does)', 'exit'],
    ['is killed with SIGKILL', 'wait'],
  ] as const) {
    it(`a server that ${how} while its worker computes leaves no worker computing`, async () => {
      const host = spawn(process.execPath, [HOST, models.path('loop'), end], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = once(host, 'exit');
      try {
        const [line] = (await once(host.stdout, 'data')) as [Buffer];
        const worker = Number(line.toString().trim());
        assert.ok(isRunning(worker), 'the worker computes');
        if (end === 'wait') host.kill('SIGKILL');
        const [code, signal] = (await exited) as [number | null, string | null];
        assert.deepEqual([code, signal], end === 'exit' ? [3, null] : [null, 'SIGKILL']);
        await until(() => !isRunning(worker), `the worker process ${worker} ends`);
      } finally {
        host.kill('SIGKILL');
      }
    });
  }
});

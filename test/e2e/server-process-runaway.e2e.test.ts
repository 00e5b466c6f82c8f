// SIGTERM while a model computes a run that does not end, on the real server process: the
// shutdown cannot wait for that run, so SHUTDOWN_GRACE_MS (or a second signal) ends the process,
// and the worker process computing the run ends with it.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loopModel } from '../../scripts/build-models.js';
import { childProcessesOf, isRunning } from '../../bench/child-processes.js';
import { schedulerShows } from '../support/engine-state.js';
import { spawnServer, type ServerProcess } from '../support/server-process.js';
import { makeRepository } from '../support/test-server.js';

const runaway = JSON.stringify({
  inputs: [
    { name: 'trip_count', shape: [1], datatype: 'INT64', data: ['1000000000000'] },
    { name: 'x', shape: [1], datatype: 'FP32', data: [0] },
  ],
});

/** The server, serving the loop model, computing a run that does not end (the request is left hanging). */
async function computingForever(env: Record<string, string>): Promise<{ server: ServerProcess; worker: number; repository: string }> {
  const repository = await makeRepository([
    { name: 'loop', onnx: loopModel(), config: { max_batch_size: 0, instance_group: [{ count: 1, kind: 'KIND_CPU' }], parameters: { intra_op_thread_count: { string_value: '1' } } } },
  ]);
  // The run is never stopped by its limit here: only the shutdown can end it.
  const server = await spawnServer({ MODEL_REPOSITORY: repository, MAX_REQUEST_TIMEOUT_MS: '600000', SHUTDOWN_DRAIN_DELAY_MS: '0', ...env });
  assert.ok(await server.untilReady(), server.stderr());
  void fetch(`${server.url}/v2/models/loop/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: runaway }).catch(() => undefined);
  await schedulerShows(server.url, 'loop', 0, 1);
  const workers = childProcessesOf(server.child.pid!);
  assert.equal(workers.length, 1, 'one instance, one worker process');
  return { server, worker: workers[0]!, repository };
}

/** Polls what only the OS can tell (a process has gone); fails after ~10 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (condition()) return;
    await sleep(10);
  }
  throw new Error(`never: ${what}`);
}

describe('SIGTERM during a run that does not end', { timeout: 120_000 }, () => {
  it('the process exits with code 1 once SHUTDOWN_GRACE_MS has passed, and its worker process ends', async () => {
    const { server, worker, repository } = await computingForever({ SHUTDOWN_GRACE_MS: '1000' });
    try {
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 1, server.stderr());
      assert.match(server.stderr(), /longer than SHUTDOWN_GRACE_MS \(1000 ms\): exiting now/);
      await until(() => !isRunning(worker), `the worker process ${worker} ends`);
    } finally {
      await server.stop();
      await rm(repository, { recursive: true, force: true });
    }
  });

  it('a second SIGTERM exits at once (code 130), and the worker process ends', async () => {
    const { server, worker, repository } = await computingForever({ SHUTDOWN_GRACE_MS: '600000' });
    try {
      server.child.kill('SIGTERM');
      for (let attempt = 0; attempt < 400; attempt++) {
        if ((await fetch(`${server.url}/v2/health/ready`).then((r) => r.status, () => 0)) === 503) break;
        await sleep(5);
      }
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 130, server.stderr());
      await until(() => !isRunning(worker), `the worker process ${worker} ends`);
    } finally {
      await server.stop();
      await rm(repository, { recursive: true, force: true });
    }
  });
});

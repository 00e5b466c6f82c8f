import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { identityModelOf } from '../support/identity-models.js';
import { CLASSIFIER_ROW, pollJob, submitJob } from '../support/jobs.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { freePort } from '../support/free-port.js';
import { spawnServer, type ServerProcess } from '../support/server-process.js';
import { makeRepository, postJson, requestJson } from '../support/test-server.js';

/** Replicas on one Redis share one admin token (the server refuses to start without it). */
const SHARED_ADMIN_TOKEN = 'replicas-share-this-admin-token';

/**
 * Jobs outlive the process that took them. One node: SIGKILLed with a job running and one
 * pending, the node started again over the same STATE_DIR runs both to the end. Two replicas on
 * one Redis: the replica running a long job is SIGKILLed; the other finds the job stalled and runs
 * it to the end; every replica answers for every job (poll, resubmit, cancel a run on another).
 */

/** 'slow' holds its worker 3 s a run (FAULT_INJECTION), long enough to kill the process in the middle of one. */
const FAULT_INJECTION = JSON.stringify({ slow: { latency_ms: 3000 }, broken: { error_rate: 1 } });
/** The replica to be killed holds it far longer: the job is still its own when the other replica is up. */
const LONG_RUN = JSON.stringify({ slow: { latency_ms: 60_000 }, broken: { error_rate: 1 } });

describe('durable jobs', () => {
  let repository: string;
  before(async () => {
    repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'slow', onnx: classifierModel() },
      { name: 'broken', onnx: classifierModel() },
      { name: 'identity', onnx: identityModelOf(['FP32']) },
    ]);
  });
  after(() => rm(repository, { recursive: true, force: true }));

  it('one node (SQLite in STATE_DIR): killed with a job running and one pending, started again, runs both to the end', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-jobs-restart-'));
    const env = { MODEL_REPOSITORY: repository, STATE_DIR: stateDir, FAULT_INJECTION, JOB_CONCURRENCY: '1' };
    let server: ServerProcess | undefined;
    try {
      server = await spawnServer(env);
      assert.ok(await server.untilReady(), server.stderr());
      const running = await submitJob(server.url, 'slow', CLASSIFIER_ROW, 'nightly-1');
      assert.equal(running.status, 202, JSON.stringify(running.body));
      await pollJob(server.url, running.body.id, (job) => job.state === 'RUNNING');
      const pending = await submitJob(server.url, 'classifier', CLASSIFIER_ROW);
      assert.equal(pending.body.state, 'PENDING');
      server.child.kill('SIGKILL');
      await server.exited;
      await server.stop();

      server = await spawnServer(env);
      assert.ok(await server.untilReady(), server.stderr());
      const rerun = await pollJob(server.url, running.body.id);
      assert.equal(rerun.state, 'SUCCEEDED', JSON.stringify(rerun));
      assert.equal(rerun.attempts, 2, 'run again: at least once');
      assert.equal((await pollJob(server.url, pending.body.id)).state, 'SUCCEEDED');
      // node:sqlite is stable in the pinned Node 24: no ExperimentalWarning on stderr.
      assert.doesNotMatch(server.stderr(), /ExperimentalWarning|SQLite is an experimental feature/);
      // The key still names the job after the restart.
      const again = await submitJob(server.url, 'slow', CLASSIFIER_ROW, 'nightly-1');
      assert.equal(again.status, 200);
      assert.equal(again.body.id, running.body.id);
    } finally {
      await server?.stop();
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('with REDIS_URL unreachable: inference serves, a job submission is 503 naming Redis, and SIGTERM still stops the server', async () => {
    const server = await spawnServer({ MODEL_REPOSITORY: repository, ADMIN_TOKEN: SHARED_ADMIN_TOKEN, REDIS_URL: `redis://127.0.0.1:${await freePort()}`, SHUTDOWN_DRAIN_DELAY_MS: '0' });
    try {
      assert.ok(await server.untilReady(), server.stderr());
      assert.equal((await postJson(`${server.url}/v2/models/classifier/infer`, CLASSIFIER_ROW)).status, 200);
      const refused = await submitJob(server.url, 'classifier', CLASSIFIER_ROW);
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.match(refused.body.error, /the job store \(Redis, REDIS_URL\) cannot be reached/);
      assert.equal(refused.headers.get('retry-after'), '1');
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0, server.stderr());
    } finally {
      await server.stop();
    }
  });

  describe('two replicas on one Redis (BullMQ)', () => {
    let redis: RedisServer;
    const servers: ServerProcess[] = [];
    const spawnReplica = async (env: Record<string, string> = {}) => {
      const server = await spawnServer({
        MODEL_REPOSITORY: repository,
        ADMIN_TOKEN: SHARED_ADMIN_TOKEN, REDIS_URL: redis.url,
        FAULT_INJECTION,
        JOB_CONCURRENCY: '1',
        JOB_LOCK_DURATION_MS: '1000',
        JOB_STALLED_INTERVAL_MS: '300',
        JOB_RETRY_BACKOFF_MS: '20',
        MAX_RESPONSE_BYTES: '1024',
        ...env,
      });
      servers.push(server);
      assert.ok(await server.untilReady(), server.stderr());
      return server;
    };
    before(async () => {
      redis = await startRedisServer();
    });
    after(async () => {
      for (const server of servers) await server.stop();
      await redis.stop();
    });

    it('a replica SIGKILLed in the middle of a job leaves it to the other, which runs it to the end', async () => {
      const doomed = await spawnReplica({ FAULT_INJECTION: LONG_RUN });
      const job = await submitJob(doomed.url, 'slow', CLASSIFIER_ROW, 'report-42');
      assert.equal(job.status, 202, JSON.stringify(job.body));
      await pollJob(doomed.url, job.body.id, (j) => j.state === 'RUNNING');
      const survivor = await spawnReplica();
      // Every replica answers for every job.
      assert.equal((await requestJson('GET', `${survivor.url}/v2/jobs/${job.body.id}`)).body.state, 'RUNNING');
      const resubmitted = await submitJob(survivor.url, 'slow', CLASSIFIER_ROW, 'report-42');
      assert.equal(resubmitted.status, 200);
      assert.equal(resubmitted.body.id, job.body.id);
      doomed.child.kill('SIGKILL');
      await doomed.exited;

      const done = await pollJob(survivor.url, job.body.id);
      assert.equal(done.state, 'SUCCEEDED', JSON.stringify(done));
      assert.equal(done.attempts, 2, 'the run the kill cut short, then the one that ended');
      const direct = await postJson(`${survivor.url}/v2/models/classifier/infer`, CLASSIFIER_ROW);
      assert.deepEqual(done.response.outputs, direct.body.outputs);
    });

    it('retries a runtime failure up to JOB_MAX_ATTEMPTS runs; fails a request the run refuses at once', async () => {
      const [replica] = servers.filter((s) => s.child.exitCode === null && s.child.signalCode === null);
      // Every run of 'broken' fails (FAULT_INJECTION error_rate 1): three runs, then FAILED.
      const broken = await pollJob(replica!.url, (await submitJob(replica!.url, 'broken', CLASSIFIER_ROW)).body.id);
      assert.equal(broken.state, 'FAILED', JSON.stringify(broken));
      assert.equal(broken.attempts, 3);
      assert.equal(broken.error_code, 'INFERENCE.RUNTIME_ERROR');
      assert.match(broken.error, /injected fault/);
      // 300 FP32 elements back, past MAX_RESPONSE_BYTES (1024), known only after the run: one run, no retry.
      const large = { inputs: [{ name: 'in_fp32', shape: [1, 300], datatype: 'FP32', data: Array.from({ length: 300 }, (_, i) => i) }] };
      const refused = await pollJob(replica!.url, (await submitJob(replica!.url, 'identity', large)).body.id);
      assert.equal(refused.state, 'FAILED', JSON.stringify(refused));
      assert.equal(refused.attempts, 1);
      assert.equal(refused.error_code, 'INFERENCE.RESPONSE_TOO_LARGE');
    });

    it('cancels, from one replica, a job running on another', async () => {
      const [runner] = servers.filter((s) => s.child.exitCode === null && s.child.signalCode === null);
      // A replica that runs no job (JOB_CONCURRENCY=0): the job runs on the other one.
      const other = await spawnReplica({ JOB_CONCURRENCY: '0' });
      const job = await submitJob(other.url, 'slow', CLASSIFIER_ROW);
      await pollJob(other.url, job.body.id, (j) => j.state === 'RUNNING');
      const cancelled = await requestJson('DELETE', `${other.url}/v2/jobs/${job.body.id}`);
      assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
      assert.equal(cancelled.body.state, 'CANCELLED');
      // It stays CANCELLED (the run aborted on its replica, not finished there); that replica goes on with the next job.
      const next = await submitJob(runner!.url, 'classifier', CLASSIFIER_ROW);
      assert.equal((await pollJob(runner!.url, next.body.id)).state, 'SUCCEEDED');
      assert.equal((await requestJson('GET', `${runner!.url}/v2/jobs/${job.body.id}`)).body.state, 'CANCELLED');
    });
  });
});

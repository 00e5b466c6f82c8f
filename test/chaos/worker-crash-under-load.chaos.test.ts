import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { FaultInjection } from '../../src/infra/onnx/fault-injection.js';
import { InferenceClient } from '../support/grpc-client.js';
import { closedLoop, eventually, grpcInfer, httpPost, loadFigures, report, scrape, succeeded, type Answer } from '../support/load.js';
import { samplesOf, valueOf } from '../support/prometheus-text.js';
import { getJson, makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 3: a session worker of a two-instance model dies (injected: the thread exits while
 * running a batch) while HTTP and gRPC clients keep the model busy. Only the requests of the batch
 * it was running may fail, at once and saying why; the other instance serves on, the pool starts
 * a replacement, and every later request succeeds.
 */
const MAX_BATCH_SIZE = 8;
const ROW = [6.7, 3.0, 5.2, 2.3];
const HTTP_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const GRPC_REQUEST = { model_name: 'crashy', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] };
const CLIENTS = 8; // even: HTTP, odd: gRPC
/** Dealt deterministically: the 40th run from now crashes, the next one 40 runs later (the plan is cleared long before). */
const CRASH_RATE = 1 / 40;
const LABELS = { model: 'crashy', version: '1' };

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([
    {
      name: 'crashy',
      onnx: classifierModel(),
      config: { max_batch_size: MAX_BATCH_SIZE, instance_group: [{ count: 2, kind: 'KIND_CPU' }], parameters: { intra_op_thread_count: { string_value: '1' } } },
    },
  ]);
  server = await startTestServer(repository);
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

test('a worker dies under load: only its batch fails (500 naming the exit), the worker is replaced, ready again, later requests all succeed', { timeout: 90_000 }, async (t) => {
  const faults = server.server.app.get(FaultInjection);
  const metricsUrl = server.server.metricsUrl!;
  let crashPlanned = false;
  let firstFailureAt: number | undefined;
  let restartedAt: number | undefined;
  const load = closedLoop<Answer & { afterRestart: boolean }>({
    clients: CLIENTS,
    send: async (client) => {
      const afterRestart = restartedAt !== undefined;
      const answer = client % 2 === 0 ? await httpPost(`${server.url}/v2/models/crashy/infer`, HTTP_BODY) : await grpcInfer(grpc, GRPC_REQUEST);
      if (!succeeded(answer) && crashPlanned) {
        // The crash happened: no other one (the test holds the server, so the plan is cleared at once).
        faults.set('crashy');
        crashPlanned = false;
        firstFailureAt ??= performance.now();
      }
      return { ...answer, afterRestart };
    },
  });
  let exits = 0;
  let restarts = 0;
  try {
    await load.further(300);
    const before = await scrape(metricsUrl);
    assert.equal(valueOf(before, 'inference_worker_exits_total', LABELS), 0);
    crashPlanned = true;
    faults.set('crashy', { crash_rate: CRASH_RATE });
    // The exit is seen, then the replacement loads and takes work.
    await eventually('a worker exit and its replacement', async () => {
      const samples = await scrape(metricsUrl);
      exits = valueOf(samples, 'inference_worker_exits_total', LABELS);
      restarts = valueOf(samples, 'inference_worker_restarts_total', LABELS);
      const workers = samplesOf(samples, 'inference_workers', LABELS).reduce((sum, s) => sum + s.value, 0);
      return exits >= 1 && restarts === exits && workers === 2 && !crashPlanned ? true : undefined;
    });
    restartedAt = performance.now();
    await load.further(300 + CLIENTS); // answers to requests sent after the replacement
  } finally {
    faults.set('crashy');
    await load.stop();
  }
  const outcomes = load.outcomes;
  const failed = outcomes.filter((o) => !succeeded(o));
  const later = outcomes.filter((o) => o.afterRestart);
  const stats = await modelStatistics(server.url, 'crashy');
  const ready = await fetch(`${server.url}/v2/health/ready`);
  const health = await getJson(`${server.url}/health`);
  const pool = health.body.details.workers.pools.find((p: { key: string }) => p.key === 'crashy/1');
  report(t, {
    ...loadFigures('load', outcomes),
    'failed requests': `${failed.length} (${[...new Set(failed.map((o) => `${o.transport} ${o.status} "${o.message}"`))].join('; ')})`,
    'worker exits / restarts (metrics)': `${exits} / ${restarts}`,
    'replacement serving after the first failure': `${((restartedAt ?? NaN) - (firstFailureAt ?? NaN)).toFixed(0)} ms`,
    'stats': `execution_count ${stats.execution_count}, inference_count ${stats.inference_count}, success ${stats.inference_stats.success.count}, fail ${stats.inference_stats.fail.count}`,
    'later requests (sent after the replacement)': `${later.length}, ${later.filter(succeeded).length} succeeded`,
    'after': `ready ${ready.status}, /health ${health.status}, instances ${pool?.instances}`,
  });

  assert.ok(failed.length >= 1, 'the crash failed the requests of its batch');
  for (const o of failed) {
    assert.equal(o.status, o.transport === 'http' ? '500' : 'INTERNAL', `${o.transport} ${o.status} ${o.message}`);
    assert.match(o.message!, /failed to run: the worker running this model exited with code 70/);
  }
  assert.ok(failed.length <= exits * MAX_BATCH_SIZE, `${failed.length} failures: more than the ${exits} crashed batch(es) of at most ${MAX_BATCH_SIZE} requests could hold`);
  assert.equal(Number(stats.inference_stats.fail.count), failed.length, "the server's statistics count the same failures");
  assert.equal(Number(stats.inference_stats.success.count), outcomes.length - failed.length);
  assert.equal(restarts, exits, 'each dead worker was replaced');
  assert.ok(later.length >= 300 && later.every(succeeded), 'every request after the replacement succeeded');
  assert.equal(ready.status, 200);
  assert.equal(health.status, 200);
  assert.equal(pool.instances, 2);
});

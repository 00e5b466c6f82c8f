import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loopModel } from '../../scripts/build-models.js';
import { childProcessesOf, isRunning } from '../../bench/child-processes.js';
import { InferenceClient } from '../support/grpc-client.js';
import { closedLoop, eventually, grpcInfer, httpPost, loadFigures, report, scrape, succeeded, type Answer } from '../support/load.js';
import { samplesOf, valueOf } from '../support/prometheus-text.js';
import { getJson, makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 8: requests whose run does not end (a Loop sent a trip count of 10^12, as a
 * generative model's max_length could be) arrive one after another at a two-instance model that
 * HTTP and gRPC clients keep busy. Each is answered 504 / DEADLINE_EXCEEDED at
 * MAX_REQUEST_TIMEOUT_MS, its worker process is killed (no CPU left computing for nobody) and
 * replaced; the ordinary requests, served by the other instance meanwhile, all succeed.
 */
const MAX_REQUEST_TIMEOUT_MS = 1500;
const RUNAWAYS = 3;
const CLIENTS = 6; // even: HTTP, odd: gRPC
const LABELS = { model: 'loop', version: '1' };
const httpBody = (turns: string) => JSON.stringify({ inputs: [{ name: 'trip_count', shape: [1], datatype: 'INT64', data: [turns] }, { name: 'x', shape: [1], datatype: 'FP32', data: [1] }] });
const grpcRequest = (turns: string) => ({
  model_name: 'loop',
  inputs: [
    { name: 'trip_count', datatype: 'INT64', shape: [1], contents: { int64_contents: [turns] } },
    { name: 'x', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } },
  ],
});

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([
    {
      name: 'loop',
      onnx: loopModel(),
      config: { max_batch_size: 0, instance_group: [{ count: 2, kind: 'KIND_CPU' }], parameters: { intra_op_thread_count: { string_value: '1' } } },
    },
  ]);
  server = await startTestServer(repository, { MAX_REQUEST_TIMEOUT_MS: String(MAX_REQUEST_TIMEOUT_MS) });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

test('runs that never end, under load: each answered 504 / DEADLINE_EXCEEDED, its process killed and replaced, every ordinary request served', { timeout: 120_000 }, async (t) => {
  const metricsUrl = server.server.metricsUrl!;
  const send = (client: number, turns: string): Promise<Answer> =>
    client % 2 === 0 ? httpPost(`${server.url}/v2/models/loop/infer`, httpBody(turns)) : grpcInfer(grpc, grpcRequest(turns));
  const load = closedLoop({ clients: CLIENTS, send: (client) => send(client, '100') });
  const runaways: Answer[] = [];
  const killedWorkers: number[] = [];
  const replacedAfterMs: number[] = [];
  try {
    await load.further(200);
    for (let i = 0; i < RUNAWAYS; i++) {
      const workersBefore = childProcessesOf(process.pid);
      const answer = await send(i, '1000000000000');
      runaways.push(answer);
      const answeredAt = performance.now();
      // Replaced: the exit and the restart counted, two instances again, the stuck process gone.
      await eventually('the stopped instance replaced', async () => {
        const samples = await scrape(metricsUrl);
        const exits = valueOf(samples, 'inference_worker_exits_total', LABELS);
        const restarts = valueOf(samples, 'inference_worker_restarts_total', LABELS);
        const instances = samplesOf(samples, 'inference_workers', LABELS).reduce((sum, s) => sum + s.value, 0);
        return exits === i + 1 && restarts === i + 1 && instances === 2 ? true : undefined;
      });
      replacedAfterMs.push(performance.now() - answeredAt);
      killedWorkers.push(...workersBefore.filter((pid) => !childProcessesOf(process.pid).includes(pid)));
      await load.further(100); // served on the replacement too
    }
  } finally {
    await load.stop();
  }
  const outcomes = load.outcomes;
  const failed = outcomes.filter((o) => !succeeded(o));
  const workersAfter = childProcessesOf(process.pid);
  const ready = await fetch(`${server.url}/v2/health/ready`);
  const health = await getJson(`${server.url}/health`);
  const pool = health.body.details.workers.pools.find((p: { key: string }) => p.key === 'loop/1');
  report(t, {
    ...loadFigures('ordinary load', outcomes),
    'ordinary requests failed': `${failed.length} (${[...new Set(failed.map((o) => `${o.transport} ${o.status} "${o.message}"`))].join('; ')})`,
    'runaway requests': runaways.map((a) => `${a.transport} ${a.status}`).join(', '),
    'replacement serving after the 504': replacedAfterMs.map((ms) => `${ms.toFixed(0)} ms`).join(', '),
    'killed worker processes still running': killedWorkers.filter(isRunning).length,
    'after': `ready ${ready.status}, instances ${pool?.instances}, lost ${pool?.lostInstances}, restarted ${pool?.restartedInstances}, worker processes ${workersAfter.length}`,
  });

  for (const answer of runaways) {
    assert.equal(answer.status, answer.transport === 'http' ? '504' : 'DEADLINE_EXCEEDED', `${answer.transport} ${answer.status} ${answer.message}`);
    assert.match(answer.message!, new RegExp(`timeout \\(${MAX_REQUEST_TIMEOUT_MS} ms\\) passed while its batch ran`));
  }
  assert.equal(failed.length, 0, 'every ordinary request was served, by the other instance while one was stuck');
  assert.equal(killedWorkers.length, RUNAWAYS, 'one worker process ended per runaway run');
  assert.deepEqual(killedWorkers.filter(isRunning), [], 'no process computes an abandoned run');
  assert.equal(workersAfter.length, 2, 'two instances, two processes: none leaked');
  assert.equal(ready.status, 200);
  assert.equal(pool.instances, 2);
});

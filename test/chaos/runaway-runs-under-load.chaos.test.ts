import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loopModel } from '../../scripts/build-models.js';
import { childProcessesOf } from '../../bench/child-processes.js';
import { InferenceClient } from '../support/grpc-client.js';
import { closedLoop, eventually, grpcInfer, httpPost, loadFigures, report, succeeded, type Answer } from '../support/load.js';
import { getJson, makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 9: runs that never end (a Loop whose trip count is an input, as a generative model's
 * max_length) sent among compliant requests over HTTP and gRPC. Each runaway is answered at
 * MAX_REQUEST_TIMEOUT_MS and its instance (a child process) is killed and replaced, so the compliant
 * requests of the same model keep being served, no process is left computing for nobody, and the
 * server stays ready.
 */
const MAX_REQUEST_TIMEOUT_MS = 800;
const INSTANCES = 2;
const FOREVER = '1000000000000';
const CLIENTS = 6; // 0 and 1 send runaways; the others compliant requests, HTTP and gRPC in turn
const RUNAWAYS_PER_CLIENT = 3;
const loopBody = (turns: string) => JSON.stringify({ inputs: [{ name: 'trip_count', shape: [1], datatype: 'INT64', data: [turns] }, { name: 'x', shape: [1], datatype: 'FP32', data: [1] }] });
const loopGrpc = (turns: string) => ({
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
      config: { max_batch_size: 0, instance_group: [{ count: INSTANCES, kind: 'KIND_CPU' }], parameters: { intra_op_thread_count: { string_value: '1' } } },
    },
  ]);
  // The breaker would open on so many timeouts (by design: faulty-version-breaker.chaos tests that);
  // here it is kept shut so that what is seen is the runaway runs being stopped.
  server = await startTestServer(repository, { MAX_REQUEST_TIMEOUT_MS: String(MAX_REQUEST_TIMEOUT_MS), BREAKER_MIN_REQUESTS: '1000000' });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

/** Waits (bounded, never for a set time) until every stopped instance's replacement serves and no other process is left. */
function instancesRestored(): Promise<{ instances: number }> {
  return eventually('every stopped instance replaced', async () => {
    const health = await getJson(`${server.url}/health`);
    const pool = health.body.details.workers.pools.find((p: { key: string }) => p.key === 'loop/1');
    return pool?.instances === INSTANCES && childProcessesOf(process.pid).length === INSTANCES ? pool : undefined;
  });
}

test('runs that never end, among compliant load: each answered at the cap, its instance replaced, compliant requests served, no process left computing', { timeout: 120_000 }, async (t) => {
  const load = closedLoop<Answer & { runaway: boolean }>({
    clients: CLIENTS,
    send: async (client, sequence) => {
      const runaway = client < 2 && sequence < RUNAWAYS_PER_CLIENT;
      const turns = runaway ? FOREVER : '3';
      const answer = (client + sequence) % 2 === 0 ? await httpPost(`${server.url}/v2/models/loop/infer`, loopBody(turns)) : await grpcInfer(grpc, loopGrpc(turns));
      return { ...answer, runaway };
    },
  });
  let restoredAt = Infinity;
  try {
    // Every runaway answered: each took an instance for MAX_REQUEST_TIMEOUT_MS, then was stopped.
    while (load.outcomes.filter((o) => o.runaway).length < 2 * RUNAWAYS_PER_CLIENT) await load.further(1);
    await instancesRestored();
    restoredAt = performance.now();
    await load.further(100 + CLIENTS); // compliant answers to requests sent once the instances are back
  } finally {
    await load.stop();
  }
  const outcomes = load.outcomes;
  const runaways = outcomes.filter((o) => o.runaway);
  const compliant = outcomes.filter((o) => !o.runaway);
  const later = compliant.filter((o) => o.sentAtMs > restoredAt);
  const pool = await instancesRestored();
  const ready = await fetch(`${server.url}/v2/health/ready`);
  const processes = childProcessesOf(process.pid);
  report(t, {
    ...loadFigures('compliant load', compliant),
    runaways: `${runaways.length}: ${[...new Set(runaways.map((o) => `${o.transport} ${o.status}`))].join(', ')}`,
    'compliant requests sent once the stopped instances were replaced': `${later.length}, ${later.filter(succeeded).length} succeeded`,
    after: `ready ${ready.status}, instances ${pool?.instances}, worker processes ${processes.length}`,
  });

  for (const o of runaways) assert.equal(o.status, o.transport === 'http' ? '504' : 'DEADLINE_EXCEEDED', `${o.transport} ${o.status} ${o.message}`);
  // A compliant request may only fail by waiting behind runaways past the same cap: never otherwise.
  for (const o of compliant.filter((c) => !succeeded(c))) assert.equal(o.status, o.transport === 'http' ? '504' : 'DEADLINE_EXCEEDED', `${o.transport} ${o.status} ${o.message}`);
  assert.ok(later.length >= 100 && later.every(succeeded), 'every compliant request sent once the instances were back is served');
  assert.equal(ready.status, 200);
  assert.equal(pool.instances, INSTANCES, 'every stopped instance replaced');
  assert.equal(processes.length, INSTANCES, 'no process left computing an abandoned run');
});

import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { FaultInjection } from '../../src/infra/onnx/fault-injection.js';
import { engineShows } from '../support/engine-state.js';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { parsePrometheusText, valueOf } from '../support/prometheus-text.js';
import { spawnServer } from '../support/server-process.js';
import { getJson, makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault injection on the real app: FAULT_INJECTION read at start, or FaultInjection.set() from the
 * test, acting inside the session workers: a failed run is a real runtime error (500 / INTERNAL),
 * a crash a real death of the worker thread, replaced by the pool; latency holds the instance.
 */
const ROW = [6.7, 3.0, 5.2, 2.3];
const infer = (url: string, model: string) => postJson(`${url}/v2/models/${model}/infer`, { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const classify = (model: string) => ({ model_name: model, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] });
const FAULT_INJECTION = JSON.stringify({ flaky: { error_rate: 0.5 }, crashy: { crash_rate: 0.5 } });

async function statuses(url: string, model: string, count: number): Promise<number[]> {
  const answers: number[] = [];
  for (let i = 0; i < count; i++) answers.push((await infer(url, model)).status);
  return answers;
}

describe('fault injection', () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;
  before(async () => {
    const repository = await makeRepository(['flaky', 'crashy', 'slow', 'clean'].map((name) => ({ name, onnx: classifierModel() })));
    server = await startTestServer(repository, { FAULT_INJECTION });
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('boots with the faults of FAULT_INJECTION: error_rate 0.5 fails every other request with a 500 naming the injected fault', async () => {
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await infer(url, 'flaky'));
    const codes = answers.map((a) => a.status);
    assert.equal(codes.filter((s) => s === 500).length, 4, `${codes}`);
    assert.equal(codes.filter((s) => s === 200).length, 4, `${codes}`);
    for (let i = 1; i < codes.length; i++) assert.notEqual(codes[i], codes[i - 1], `they alternate: ${codes}`);
    for (const failed of answers.filter((a) => a.status === 500)) {
      assert.match(failed.body.error, /model 'flaky\/1' failed to run: injected fault: this run fails \(FAULT_INJECTION\)/);
    }
    // The same runs over gRPC: one of the next two fails, as INTERNAL.
    const outcomes: (ServiceError | undefined)[] = [];
    for (let i = 0; i < 2; i++) outcomes.push(await client.infer(classify('flaky')).then(() => undefined, (error: ServiceError) => error));
    const failed = outcomes.filter((outcome) => outcome !== undefined);
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.code, Status.INTERNAL);
    assert.match(failed[0]!.details, /injected fault: this run fails/);
    assert.deepEqual(await statuses(url, 'clean', 4), [200, 200, 200, 200], 'a model without a plan is untouched');
  });

  it('a crash kills the worker: a 500 naming its exit, then the replacement serves (inference_worker_restarts_total)', async () => {
    const before = parsePrometheusText(await (await fetch(server.server.metricsUrl!)).text());
    assert.equal(valueOf(before, 'inference_worker_exits_total', { model: 'crashy', version: '1' }), 0);
    // crash_rate 0.5: one of the next two runs crashes.
    let crashed = await infer(url, 'crashy');
    if (crashed.status === 200) crashed = await infer(url, 'crashy');
    assert.equal(crashed.status, 500, JSON.stringify(crashed.body));
    assert.match(crashed.body.error, /model 'crashy\/1' failed to run: the worker running this model exited with code 70/);

    const recovered = await infer(url, 'crashy');
    assert.equal(recovered.status, 200, `the next request waits for the replacement and is served: ${JSON.stringify(recovered.body)}`);
    const samples = parsePrometheusText(await (await fetch(server.server.metricsUrl!)).text());
    assert.equal(valueOf(samples, 'inference_worker_exits_total', { model: 'crashy', version: '1' }), 1);
    assert.equal(valueOf(samples, 'inference_worker_restarts_total', { model: 'crashy', version: '1' }), 1);
    const { body: health } = await getJson(`${url}/health`);
    const pool = health.details.workers.pools.find((p: { key: string }) => p.key === 'crashy/1');
    assert.equal(pool.instances, 1, 'the instance is back');

    server.server.app.get(FaultInjection).set('crashy');
    assert.deepEqual(await statuses(url, 'crashy', 5), [200, 200, 200, 200, 200], 'no plan, no crash');
  });

  it('set() at run time: a version plan wins over the model plan, and removing it restores the model plan', async () => {
    const faults = server.server.app.get(FaultInjection);
    faults.set('clean', { error_rate: 1 });
    faults.set('clean/1', { error_rate: 0 });
    assert.deepEqual(await statuses(url, 'clean', 3), [200, 200, 200]);
    faults.set('clean/1');
    assert.deepEqual(await statuses(url, 'clean', 3), [500, 500, 500]);
    faults.set('clean');
    assert.deepEqual(await statuses(url, 'clean', 3), [200, 200, 200]);
  });

  it(
    'latency_ms holds the instance: it shows in the compute_time_us of the answer',
    async () => {
      server.server.app.get(FaultInjection).set('slow', { latency_ms: 300 });
      const answer = await infer(url, 'slow');
      server.server.app.get(FaultInjection).set('slow');
      assert.equal(answer.status, 200);
      assert.ok(answer.body.parameters.compute_time_us >= 300_000, `compute_time_us ${answer.body.parameters.compute_time_us}`);
    },
  );

  it('latency_ms holds the instance: a request behind a slow run waits for it in the queue', async () => {
    server.server.app.get(FaultInjection).set('slow', { latency_ms: 1000 });
    const first = infer(url, 'slow');
    await engineShows(url, 'slow', 1, 0);
    const second = await infer(url, 'slow');
    server.server.app.get(FaultInjection).set('slow');
    assert.equal((await first).status, 200);
    assert.equal(second.status, 200);
    assert.ok(second.body.parameters.queue_time_us >= 500_000, `queue_time_us of the request behind: ${second.body.parameters.queue_time_us}`);
  });
});

describe('an invalid FAULT_INJECTION', () => {
  let repository: string;
  before(async () => {
    repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
  });
  after(async () => {
    await rm(repository, { recursive: true, force: true });
  });

  /** Starts the server process with the value; how it ended (it is stopped if it started anyway). */
  async function start(faultInjection: string): Promise<{ started: boolean; code: number | null; stderr: string }> {
    const server = await spawnServer({ MODEL_REPOSITORY: repository, FAULT_INJECTION: faultInjection });
    let started: boolean;
    try {
      started = await server.untilLive();
    } finally {
      await server.stop();
    }
    return { started, code: await server.exited, stderr: server.stderr() };
  }

  for (const [what, json, mention] of [
    ['not JSON', '{flaky: 1}', /FAULT_INJECTION=.*: not JSON/],
    ['an error_rate above 1', '{"flaky": {"error_rate": 2}}', /FAULT_INJECTION=.*: flaky\.error_rate/],
    ['an unknown field', '{"flaky": {"latency": 5}}', /FAULT_INJECTION=.*: flaky: .*latency/],
  ] as const) {
    it(`refuses to start on ${what}, saying why`, async () => {
      const { started, code, stderr } = await start(json);
      assert.equal(started, false, 'it never served');
      assert.ok(code !== null && code !== 0, `it exited by itself, with an error code: ${code}`);
      assert.match(stderr, mention);
    });
  }

  it(
    'exits with code 2, like any other bad environment variable',
    async () => {
      const { code } = await start('{"flaky": {"error_rate": 2}}');
      assert.equal(code, 2);
    },
  );
});

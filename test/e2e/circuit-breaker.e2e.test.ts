import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { faultyClassifierModel } from '../support/rollout-models.js';
import { makeRepository, modelStatistics, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * One circuit breaker per model version, shared by HTTP and gRPC: it opens on server-side failures
 * past the rate, fails fast without computing while open, lets a trial through after
 * BREAKER_OPEN_MS and closes when it succeeds; a client's bad requests never open it.
 */
const FAILING = [5.1, 3.5, 1.4, 0.2]; // the faulty model fails on an element of 3 or more
const GOOD = [0.5, 1, 1.5, 2];
const infer = (url: string, model: string, data: number[]) => postJson(`${url}/v2/models/${model}/infer`, { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data }] });

async function breakerState(metricsUrl: string, model: string): Promise<string | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  const open = new RegExp(`^inference_circuit_breaker_state\\{model="${model}",version="1",state="(closed|open|half_open)"\\} 1$`, 'm').exec(text);
  return open?.[1];
}

describe('circuit breakers', () => {
  let server: TestServer;
  let client: InferenceClient;
  before(async () => {
    const repository = await makeRepository([
      { name: 'faulty', onnx: faultyClassifierModel() },
      { name: 'picky', onnx: faultyClassifierModel() },
    ]);
    // Open long enough for the checks of the first test on a busy machine (300 ms was not: it went half-open midway).
    server = await startTestServer(repository, { BREAKER_MIN_REQUESTS: '5', BREAKER_ERROR_RATE: '0.5', BREAKER_OPEN_MS: '2000', BREAKER_WINDOW_MS: '60000' });
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('opens after the failures, then fails fast over HTTP and gRPC without computing, naming the breaker', async () => {
    // BREAKER_MIN_REQUESTS is 5: the fifth failure opens it.
    for (let i = 0; i < 5; i++) assert.equal((await infer(server.url, 'faulty', FAILING)).status, 500);
    const executions = (await modelStatistics(server.url, 'faulty')).execution_count;
    const refused = await infer(server.url, 'faulty', GOOD);
    assert.equal(refused.status, 503);
    assert.match(refused.body.error, /circuit breaker of version 1 of model 'faulty' is open/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    await assert.rejects(
      client.infer({ model_name: 'faulty', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: GOOD } }] }),
      (error: ServiceError) => error.code === Status.UNAVAILABLE && /circuit breaker/.test(error.details),
    );
    assert.equal((await modelStatistics(server.url, 'faulty')).execution_count, executions, 'nothing was computed while open');
    assert.equal(await breakerState(server.server.metricsUrl!, 'faulty'), 'open');
  });

  it('lets a trial through once BREAKER_OPEN_MS has passed, and closes when it succeeds', async () => {
    let status = 503;
    for (let attempt = 0; attempt < 400 && status === 503; attempt++) {
      status = (await infer(server.url, 'faulty', GOOD)).status;
      if (status === 503) await sleep(10);
    }
    assert.equal(status, 200, 'the trial request ran and succeeded');
    assert.equal(await breakerState(server.server.metricsUrl!, 'faulty'), 'closed');
    for (let i = 0; i < 5; i++) assert.equal((await infer(server.url, 'faulty', GOOD)).status, 200);
  });

  it("never opens on a client's bad requests", async () => {
    for (let i = 0; i < 20; i++) {
      const bad = await postJson(`${server.url}/v2/models/picky/infer`, { inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] });
      assert.equal(bad.status, 400);
    }
    assert.equal((await infer(server.url, 'picky', GOOD)).status, 200);
    assert.equal(await breakerState(server.server.metricsUrl!, 'picky'), 'closed');
  });
});

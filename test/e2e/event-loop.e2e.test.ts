import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { heavyModel } from '../../scripts/build-models.js';
import { getJson, makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

describe('the event loop stays free while a worker computes', () => {
  let server: TestServer;
  before(async () => {
    const repository = await makeRepository([
      { name: 'heavy', onnx: heavyModel(), config: { parameters: { intra_op_thread_count: { string_value: '1' } } } },
    ]);
    server = await startTestServer(repository);
  });
  after(() => server.close());

  it('answers health probes while a long inference runs, before that inference finishes', async () => {
    let inferenceFinished = false;
    const inference = postJson(`${server.url}/v2/models/heavy/infer`, {
      inputs: [{ name: 'x', shape: [1, 256], datatype: 'FP32', data: new Array(256).fill(0.5) }],
    }).finally(() => {
      inferenceFinished = true;
    });

    // Wait until the worker reports the run in progress; each of these answers is itself served mid-computation.
    let busy = 0;
    for (let attempt = 0; attempt < 500 && busy === 0 && !inferenceFinished; attempt++) {
      const health = await getJson(`${server.url}/health`);
      busy = health.body.details.workers.pools.find((pool: { key: string }) => pool.key === 'heavy/1').busy;
      if (busy === 0) await sleep(5);
    }
    assert.equal(busy, 1, 'the worker never reported the inference as running');
    const live = await fetch(`${server.url}/v2/health/live`);
    assert.equal(live.status, 200);
    assert.equal(inferenceFinished, false, 'the liveness answer came only after the inference finished');

    const result = await inference;
    assert.equal(result.status, 200);
    assert.deepEqual(result.body.outputs[0].shape, [1, 256]);
  });
});

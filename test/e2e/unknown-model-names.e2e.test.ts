import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { Rollouts } from '../../src/modules/rollout/rollouts.js';
import { InferenceClient } from '../support/grpc-client.js';
import { makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Issue 15, item 3: 20,000 requests naming distinct unknown models kept every name forever (the
 * rollouts' "restored" set, reached from the queue-full check before the model is looked up):
 * +50-60 MiB per 100k names, no token needed. Nothing a client names is kept unless it is a model
 * the server knows: not by the rollouts, not as a metric label.
 */
const NAMES = 3000;
const ROW = [6.7, 3.0, 5.2, 2.3];

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
  server = await startTestServer(repository, { THROTTLE_RATE: '100000', THROTTLE_CLIENT_HEADER: 'x-api-key' });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

test(`${NAMES} requests naming distinct unknown models (HTTP infer, metadata, readiness; gRPC infer): 404 each, and no name is kept`, { timeout: 60_000 }, async () => {
  const rollouts = server.server.app.get(Rollouts);
  const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
  const statuses = new Set<string>();
  for (let start = 0; start < NAMES; start += 50) {
    await Promise.all(
      Array.from({ length: 50 }, async (_, j) => {
        const name = `ghost-${start + j}`;
        const kind = (start + j) % 4;
        if (kind === 3) {
          const error = await grpc.infer({ model_name: name, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] }).then(
            () => undefined,
            (e: { code: number }) => e,
          );
          statuses.add(`grpc ${error?.code}`);
          return;
        }
        const path = kind === 0 ? `/v2/models/${name}/infer` : kind === 1 ? `/v2/models/${name}/versions/1/infer` : `/v2/models/${name}/ready`;
        const response = await fetch(`${server.url}${path}`, { method: kind === 2 ? 'GET' : 'POST', headers: { 'content-type': 'application/json', 'x-api-key': name }, body: kind === 2 ? undefined : body });
        await response.arrayBuffer();
        statuses.add(`http ${response.status}`);
      }),
    );
  }
  assert.deepEqual([...statuses].sort(), ['grpc 5', 'http 404']);
  // The one model the server knows is the most it may remember (it has not even been asked about).
  assert.ok(rollouts.rememberedModels <= 1, `the rollouts remember ${rollouts.rememberedModels} model names`);
  const metrics = await (await fetch(server.server.metricsUrl!)).text();
  assert.doesNotMatch(metrics, /ghost-/, 'no unknown name became a metric label');
  // A known model still routes and answers.
  const known = await fetch(`${server.url}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(known.status, 200);
  assert.equal(rollouts.rememberedModels, 1);
});

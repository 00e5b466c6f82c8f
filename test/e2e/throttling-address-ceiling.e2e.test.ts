import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient } from '../support/grpc-client.js';
import { makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Issue 15, item 10: a client rotating its THROTTLE_CLIENT_HEADER value got a fresh bucket per
 * request (100 of 100 accepted at 5/s). THROTTLE_ADDRESS_RATE is a ceiling per source address,
 * whatever name the request carries. The ceiling's rate is tiny (0.1/s) so that what it lets
 * through is its burst, whatever the test's pace.
 */
const BURST = 10;
const ROW = [6.7, 3.0, 5.2, 2.3];
const BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
  server = await startTestServer(repository, {
    THROTTLE_RATE: '5',
    THROTTLE_CLIENT_HEADER: 'x-api-key',
    THROTTLE_ADDRESS_RATE: '0.1',
    THROTTLE_ADDRESS_BURST: String(BURST),
  });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

test(`a client naming a new x-api-key on every request: the address ceiling (burst ${BURST}) still holds, over HTTP, gRPC and a stream's requests`, { timeout: 30_000 }, async () => {
  const statuses: string[] = [];
  const messages = new Set<string>();
  for (let i = 0; i < 30; i++) {
    const response = await fetch(`${server.url}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': `key-${i}` }, body: BODY });
    const answer = (await response.json()) as { error?: string };
    statuses.push(String(response.status));
    if (response.status === 429) {
      assert.ok(Number(response.headers.get('retry-after')) >= 1);
      messages.add(answer.error!);
    }
  }
  const served = statuses.filter((s) => s === '200').length;
  assert.ok(served <= BURST + 1, `${served} of 30 served to one address rotating its key`);
  assert.equal(statuses.filter((s) => s === '429').length, 30 - served);
  assert.match(String([...messages][0]), /the source address 127\.0\.0\.1 is over its ceiling of 0\.1 requests per second \(THROTTLE_ADDRESS_RATE, burst 10\)/);

  const unary = await grpc
    .infer({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] }, { metadata: { 'x-api-key': 'fresh' } })
    .then(() => 'OK', (error: { code: number; details: string }) => `${error.code} ${error.details}`);
  assert.match(unary, /^8 the source address 127\.0\.0\.1 is over its ceiling .*\(THROTTLE_ADDRESS_RATE/);

  const stream = grpc.stream({ metadata: { 'x-api-key': 'fresher' } });
  stream.write({ model_name: 'classifier', id: 's1', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] });
  const [answer] = await stream.received(1);
  stream.end();
  await stream.finished;
  assert.match(String(answer?.error_message), /THROTTLE_ADDRESS_RATE/);
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient } from '../support/grpc-client.js';
import { grpcInfer, httpPost, loadFigures, pacedLoad, report, scrape, succeeded, type Outcome } from '../support/load.js';
import { valueOf } from '../support/prometheus-text.js';
import { makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 5: per-client quotas (a token bucket per x-api-key, shared by HTTP and gRPC). One
 * client sends ten times its rate, three others half of it, on the same model at the same time.
 * The abusive client gets its quota and is refused the rest (429 / RESOURCE_EXHAUSTED with a
 * retry hint) before its requests reach the model; the others are not affected.
 */
const RATE = 20;
const BURST = 20;
const DURATION_MS = 4000;
const ROW = [6.7, 3.0, 5.2, 2.3];
const HTTP_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const GRPC_REQUEST = { model_name: 'shared', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] };
const LABELS = { model: 'shared', version: '1' };

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([{ name: 'shared', onnx: classifierModel() }]);
  server = await startTestServer(repository, { THROTTLE_RATE: String(RATE), THROTTLE_BURST: String(BURST), THROTTLE_CLIENT_HEADER: 'x-api-key' });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

/** A client named by its API key, alternating HTTP and gRPC at a fixed rate. */
function client(key: string, ratePerSecond: number, index: number): Promise<Outcome[]> {
  return pacedLoad({
    ratePerSecond,
    durationMs: DURATION_MS,
    client: index,
    send: (sequence) =>
      sequence % 2 === 0
        ? httpPost(`${server.url}/v2/models/shared/infer`, HTTP_BODY, { 'x-api-key': key })
        : grpcInfer(grpc, GRPC_REQUEST, { metadata: { 'x-api-key': key } }),
  });
}

test(`a client at 10x its quota (${10 * RATE} req/s, quota ${RATE}/s burst ${BURST}) beside 3 at half of it: compliant >= 99.9% served, the abusive one refused 429/RESOURCE_EXHAUSTED with Retry-After, its refusals never reach the model`, { timeout: 90_000 }, async (t) => {
  const started = performance.now();
  const [abusive, ...compliant] = await Promise.all([client('abusive', 10 * RATE, 0), ...[1, 2, 3].map((i) => client(`compliant-${i}`, RATE / 2, i))]);
  const elapsedS = (performance.now() - started) / 1000;
  const everyCompliant = compliant.flat();
  const abusiveServed = abusive.filter(succeeded);
  const abusiveRefused = abusive.filter((o) => !succeeded(o));
  const stats = await modelStatistics(server.url, 'shared');
  const metrics = await scrape(server.server.metricsUrl!);
  const quota = BURST + RATE * elapsedS;
  report(t, {
    ...loadFigures('abusive', abusive),
    ...loadFigures('compliant', everyCompliant),
    'abusive quota': `${abusiveServed.length} served of a quota of ${quota.toFixed(0)} (burst ${BURST} + ${RATE}/s x ${elapsedS.toFixed(2)} s)`,
    'refusal messages': [...new Set(abusiveRefused.map((o) => `${o.transport} ${o.status} "${o.message}" retry-after ${o.retryAfter}`))].slice(0, 4).join('; '),
    stats: `inference_count ${stats.inference_count}, execution_count ${stats.execution_count}, success ${stats.inference_stats.success.count}, fail ${stats.inference_stats.fail.count}`,
    'metrics': `inference_count_total ${valueOf(metrics, 'inference_count_total', LABELS)}, inference_exec_count_total ${valueOf(metrics, 'inference_exec_count_total', LABELS)}`,
  });

  for (const [i, outcomes] of compliant.entries()) {
    const served = outcomes.filter(succeeded).length;
    assert.ok(served >= outcomes.length * 0.999, `compliant client ${i + 1}: ${served} of ${outcomes.length} served: ${JSON.stringify(outcomes.find((o) => !succeeded(o)))}`);
  }
  for (const o of abusiveRefused) {
    assert.equal(o.status, o.transport === 'http' ? '429' : 'RESOURCE_EXHAUSTED', `${o.transport} ${o.status} ${o.message}`);
    assert.match(o.message!, new RegExp(`the client named by x-api-key is over its rate limit of ${RATE} requests per second`));
    assert.ok(Number(o.retryAfter) >= 1, `${o.transport} ${o.status} carries Retry-After (${o.retryAfter})`);
  }
  for (const transport of ['http', 'grpc']) assert.ok(abusiveRefused.some((o) => o.transport === transport), `the abusive client was refused over ${transport} too`);
  // Its quota and no more (+5% and a request of slack for the timing of the two clocks); the model served it.
  assert.ok(abusiveServed.length <= quota * 1.05 + 1, `${abusiveServed.length} served to the abusive client, over its quota of ${quota.toFixed(0)}`);
  assert.ok(abusiveServed.length >= RATE * (DURATION_MS / 1000) * 0.5, `${abusiveServed.length} served to the abusive client: the model serves its quota`);
  // What reached the model is exactly what was served: the refused requests never did.
  const served = abusiveServed.length + everyCompliant.filter(succeeded).length;
  assert.equal(Number(stats.inference_count), served, 'inference_count counts the served requests only');
  assert.equal(Number(stats.inference_stats.success.count), served);
  assert.equal(Number(stats.inference_stats.fail.count), 0, 'no refused request failed in the model');
  assert.equal(valueOf(metrics, 'inference_count_total', LABELS), served);
  assert.equal(valueOf(metrics, 'inference_exec_count_total', LABELS), Number(stats.execution_count));
});

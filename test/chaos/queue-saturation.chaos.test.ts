import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { FaultInjection } from '../../src/infra/onnx/fault-injection.js';
import { InferenceClient } from '../support/grpc-client.js';
import { grpcInfer, httpPost, latencyOf, loadFigures, pacedLoad, report, scrape, succeeded } from '../support/load.js';
import { valueOf } from '../support/prometheus-text.js';
import { makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 4: a model that can take 40 requests/s (2 instances, one request per run, 50 ms
 * per run: injected latency) with a queue of 8, offered twice that over HTTP and gRPC at a fixed
 * rate. The excess is refused at once (503 / UNAVAILABLE with a retry hint), never computed;
 * what is accepted waits at most for the queue ahead of it.
 */
const INSTANCES = 2;
const RUN_MS = 50;
const MAX_QUEUE_SIZE = 8;
const CAPACITY_PER_S = (INSTANCES * 1000) / RUN_MS;
const OFFERED_PER_S = 2 * CAPACITY_PER_S;
const DURATION_MS = 4000;
/** The client's own timeout on every request (x-timeout-ms / gRPC deadline): refusals must come far sooner. */
const REQUEST_TIMEOUT_MS = 30_000;
/**
 * An accepted request waits for the queue ahead of it (MAX_QUEUE_SIZE / INSTANCES runs), the run in
 * progress and its own; x10 for a machine whose other work starves this process' main thread.
 */
const ACCEPTED_BOUND_MS = (MAX_QUEUE_SIZE / INSTANCES + 2) * RUN_MS * 10;
const ROW = [6.7, 3.0, 5.2, 2.3];
const HTTP_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const GRPC_REQUEST = { model_name: 'saturated', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] };
const LABELS = { model: 'saturated', version: '1' };

let server: TestServer;
let grpc: InferenceClient;

before(async () => {
  const repository = await makeRepository([
    {
      name: 'saturated',
      onnx: classifierModel(),
      config: {
        max_batch_size: 1,
        instance_group: [{ count: INSTANCES, kind: 'KIND_CPU' }],
        parameters: { intra_op_thread_count: { string_value: '1' } },
        dynamic_batching: { default_queue_policy: { max_queue_size: MAX_QUEUE_SIZE } },
      },
    },
  ]);
  server = await startTestServer(repository);
  server.server.app.get(FaultInjection).set('saturated', { latency_ms: RUN_MS });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  grpc?.close();
  await server?.close();
});

test(`queue at 2x capacity (${OFFERED_PER_S} req/s offered, ${CAPACITY_PER_S} served): refusals are 503/UNAVAILABLE with Retry-After well before the request's timeout, accepted p99 bounded, no other status, queue back to 0`, { timeout: 90_000 }, async (t) => {
  const metricsUrl = server.server.metricsUrl!;
  // The queue depth as Prometheus would see it, sampled during the load.
  const depths: number[] = [];
  let loading = true;
  const sampler = (async () => {
    while (loading) {
      depths.push(valueOf(await scrape(metricsUrl), 'inference_pending_requests', LABELS));
      await sleep(250);
    }
  })();
  const loadStarted = performance.now();
  const outcomes = await pacedLoad({
    ratePerSecond: OFFERED_PER_S,
    durationMs: DURATION_MS,
    send: (sequence) =>
      sequence % 2 === 0
        ? httpPost(`${server.url}/v2/models/saturated/infer`, HTTP_BODY, { 'x-timeout-ms': String(REQUEST_TIMEOUT_MS) })
        : grpcInfer(grpc, GRPC_REQUEST, { deadlineMs: REQUEST_TIMEOUT_MS }),
  });
  const loadMs = performance.now() - loadStarted;
  loading = false;
  await sampler;
  const afterLoad = await scrape(metricsUrl);
  const stats = await modelStatistics(server.url, 'saturated');

  const accepted = outcomes.filter(succeeded);
  const refused = outcomes.filter((o) => o.status === '503' || o.status === 'UNAVAILABLE');
  const other = outcomes.filter((o) => !succeeded(o) && !refused.includes(o));
  const acceptedLatency = latencyOf(accepted);
  const refusedLatency = latencyOf(refused);
  report(t, {
    ...loadFigures('load', outcomes),
    offered: `${OFFERED_PER_S} req/s for ${DURATION_MS} ms (capacity ${CAPACITY_PER_S} req/s, max_queue_size ${MAX_QUEUE_SIZE}, ${INSTANCES} instances x ${RUN_MS} ms); all answered after ${loadMs.toFixed(0)} ms`,
    'generator lateness': `p99 ${latencyOf(outcomes.map((o) => ({ ...o, latencyMs: o.lateMs }))).p99Ms.toFixed(1)} ms`,
    'accepted latency': `p50 ${acceptedLatency.p50Ms.toFixed(1)} ms, p99 ${acceptedLatency.p99Ms.toFixed(1)} ms, max ${acceptedLatency.maxMs.toFixed(1)} ms (bound ${ACCEPTED_BOUND_MS} ms)`,
    'refusal latency': `p50 ${refusedLatency.p50Ms.toFixed(1)} ms, p99 ${refusedLatency.p99Ms.toFixed(1)} ms, max ${refusedLatency.maxMs.toFixed(1)} ms (request timeout ${REQUEST_TIMEOUT_MS} ms)`,
    'refusal messages': [...new Set(refused.map((o) => `${o.transport} "${o.message}" retry-after ${o.retryAfter}`))].join('; '),
    'queue depth (metrics)': `max ${Math.max(...depths)} over ${depths.length} scrapes during the load, ${valueOf(afterLoad, 'inference_pending_requests', LABELS)} after`,
    stats: `execution_count ${stats.execution_count}, inference_count ${stats.inference_count}`,
    'rejected (metrics)': valueOf(afterLoad, 'inference_request_failure_total', { ...LABELS, reason: 'rejected' }),
  });

  assert.deepEqual(other.slice(0, 5).map((o) => `${o.transport} ${o.status} ${o.message}`), [], `${other.length} answers neither accepted nor refused with 503/UNAVAILABLE`);
  // Twice the capacity: about half refused. The instances cannot have run more than their time allows
  // (one run per RUN_MS each); fewer when this process is starved of CPU, but at least a queue's worth.
  assert.ok(refused.length >= outcomes.length * 0.2, `${refused.length} of ${outcomes.length} refused`);
  assert.ok(accepted.length >= MAX_QUEUE_SIZE, `${accepted.length} of ${outcomes.length} accepted`);
  assert.ok(accepted.length <= INSTANCES * Math.ceil(loadMs / RUN_MS), `${accepted.length} accepted: more than ${INSTANCES} instances can run in ${loadMs.toFixed(0)} ms`);
  for (const o of refused) {
    assert.match(o.message!, /the queue of this model is full \(max_queue_size 8\)/, `${o.transport}: ${o.message}`);
    assert.equal(o.retryAfter, '1', `${o.transport} ${o.status} carries a retry hint`);
  }
  for (const transport of ['http', 'grpc']) assert.ok(refused.some((o) => o.transport === transport), `${transport} requests were refused too`);
  assert.ok(refusedLatency.maxMs < REQUEST_TIMEOUT_MS / 4, `refusals answered in at most ${refusedLatency.maxMs.toFixed(0)} ms, far before the request's own ${REQUEST_TIMEOUT_MS} ms`);
  assert.ok(acceptedLatency.p99Ms <= ACCEPTED_BOUND_MS, `accepted p99 ${acceptedLatency.p99Ms.toFixed(0)} ms > ${ACCEPTED_BOUND_MS} ms`);
  assert.ok(Math.max(...depths) <= MAX_QUEUE_SIZE, 'the queue never held more than max_queue_size');
  assert.equal(valueOf(afterLoad, 'inference_pending_requests', LABELS), 0, 'the queue is empty after the load');
  // One request per run: what was computed is what was accepted, nothing refused ran.
  assert.equal(Number(stats.execution_count), accepted.length);
  assert.equal(Number(stats.inference_count), accepted.length);
  assert.equal(valueOf(afterLoad, 'inference_request_failure_total', { ...LABELS, reason: 'rejected' }), refused.length, 'every refusal counted as rejected');
});

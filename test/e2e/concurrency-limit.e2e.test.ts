import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifierModel } from '../../scripts/build-models.js';
import { FaultInjection } from '../../src/infra/onnx/fault-injection.js';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { parsePrometheusText, samplesOf, valueOf, type Sample } from '../support/prometheus-text.js';
import { makeRepository, modelStatistics, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * In-flight limits per model version over real sockets: a request past the limit is refused at once
 * (503 / UNAVAILABLE, Retry-After) and never queued. The model is made slow with the app's own
 * FaultInjection (latency_ms: the worker holds its instance that long), so that the requests
 * admitted are still in flight while the others arrive; each refusal is checked against what the
 * server shows (the scheduler in GET /health, /stats, the metrics).
 */
const ROW = [6.7, 3.0, 5.2, 2.3];
const infer = (url: string, model: string) => postJson(`${url}/v2/models/${model}/infer`, { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const classify = (model: string) => ({ model_name: model, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] });
const withInflight = (value: string, extra: object = {}) => ({ parameters: { max_inflight_requests: { string_value: value } }, ...extra });

type Answer = Awaited<ReturnType<typeof infer>>;

async function scrape(server: TestServer): Promise<Sample[]> {
  return parsePrometheusText(await (await fetch(server.server.metricsUrl!)).text());
}

/** Requests sent together: all their answers, and a wait until a number of them have come back. */
function inFlight(requests: Promise<Answer>[]): { all: Promise<Answer[]>; untilSettled(count: number): Promise<void> } {
  let settled = 0;
  for (const request of requests) void request.then(() => settled++, () => settled++);
  return {
    all: Promise.all(requests),
    async untilSettled(count) {
      for (let attempt = 0; attempt < 1000 && settled < count; attempt++) await sleep(5);
      assert.ok(settled >= count, `only ${settled} of the requests were answered`);
    },
  };
}

function byStatus(answers: readonly Answer[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const { status } of answers) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

describe('in-flight limits', () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;
  let faults: FaultInjection;
  before(async () => {
    const repository = await makeRepository([
      { name: 'capped', onnx: classifierModel(), config: withInflight('2') },
      { name: 'defaulted', onnx: classifierModel() },
      { name: 'uncapped', onnx: classifierModel(), config: withInflight('0') },
    ]);
    server = await startTestServer(repository, { MAX_INFLIGHT_REQUESTS: '1' });
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
    faults = server.server.app.get(FaultInjection);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('max_inflight_requests 2: of 6 concurrent requests 2 are served, 4 refused at once with 503 naming the limit, Retry-After 1, never computed', async () => {
    faults.set('capped', { latency_ms: 1500 });
    const answers = inFlight(Array.from({ length: 6 }, () => infer(url, 'capped')));
    // The refusals come back at once; the two admitted are held by the slow runs meanwhile.
    await answers.untilSettled(4);
    await assert.rejects(client.infer(classify('capped')), (error: ServiceError) => {
      assert.equal(error.code, Status.UNAVAILABLE, error.details);
      assert.match(error.details, /version 1 of model 'capped' already holds its limit of 2 requests in flight \(max_inflight_requests\)/);
      assert.deepEqual(error.metadata.get('retry-after'), ['1']);
      return true;
    });
    const settled = await answers.all;
    assert.deepEqual(byStatus(settled), { 200: 2, 503: 4 });
    for (const refused of settled.filter((a) => a.status === 503)) {
      assert.match(refused.body.error, /version 1 of model 'capped' already holds its limit of 2 requests in flight/);
      assert.equal(refused.headers.get('retry-after'), '1');
    }
    const stats = await modelStatistics(url, 'capped');
    assert.equal(Number(stats.inference_count), 2, 'the refused requests were never computed');

    faults.set('capped');
    assert.deepEqual(byStatus(await Promise.all([infer(url, 'capped'), infer(url, 'capped')])), { 200: 2 }, 'the places are free again');
  });

  it('MAX_INFLIGHT_REQUESTS is the limit of a model that sets none', async () => {
    faults.set('defaulted', { latency_ms: 1000 });
    const answers = await Promise.all(Array.from({ length: 3 }, () => infer(url, 'defaulted')));
    faults.set('defaulted');
    assert.deepEqual(byStatus(answers), { 200: 1, 503: 2 });
    assert.match(answers.find((a) => a.status === 503)!.body.error, /already holds its limit of 1 requests in flight/);
  });

  it('max_inflight_requests "0" lifts the default cap for that model: every request queues and is served', async () => {
    faults.set('uncapped', { latency_ms: 300 });
    const answers = await Promise.all(Array.from({ length: 4 }, () => infer(url, 'uncapped')));
    faults.set('uncapped');
    assert.deepEqual(byStatus(answers), { 200: 4 });
  });

  it('exports each limit (inference_concurrency_limit) and counts the refusals with reason "rejected"', async () => {
    const samples = await scrape(server);
    assert.equal(valueOf(samples, 'inference_concurrency_limit', { model: 'capped', version: '1' }), 2);
    assert.equal(valueOf(samples, 'inference_concurrency_limit', { model: 'defaulted', version: '1' }), 1);
    assert.deepEqual(samplesOf(samples, 'inference_concurrency_limit', { model: 'uncapped' }), [], 'no limit, no series');
    assert.equal(valueOf(samples, 'inference_request_failure_total', { model: 'capped', version: '1', reason: 'rejected' }), 5, '4 over HTTP, 1 over gRPC');
    assert.equal(valueOf(samples, 'inference_request_failure_total', { model: 'defaulted', version: '1', reason: 'rejected' }), 2);
    assert.equal(valueOf(samples, 'inference_request_failure_total', { model: 'uncapped', version: '1', reason: 'rejected' }), 0);
  });
});

describe('the adaptive in-flight limit (ADAPTIVE_CONCURRENCY)', () => {
  let server: TestServer;
  let url: string;
  let faults: FaultInjection;
  before(async () => {
    server = await startTestServer(await makeRepository([{ name: 'adaptive', onnx: classifierModel() }]), { ADAPTIVE_CONCURRENCY: 'true' });
    url = server.url;
    faults = server.server.app.get(FaultInjection);
  });
  after(async () => {
    await server.close();
  });

  const limitNow = async () => valueOf(await scrape(server), 'inference_concurrency_limit', { model: 'adaptive', version: '1' });

  it('falls when latency rises sharply, and sheds the excess', async () => {
    // A baseline: a few clients at a time (the limit is not judged while under half used), fast runs.
    faults.set('adaptive', { latency_ms: 5 });
    const baseline: Answer[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 40; i++) baseline.push(await infer(url, 'adaptive'));
      }),
    );
    assert.deepEqual(byStatus(baseline), { 200: 160 });
    const startingLimit = await limitNow();
    assert.ok(startingLimit > 4, `the limit starts above the baseline's concurrency: ${startingLimit}`);

    // Then every run takes far longer, and many more requests arrive at once, wave after wave.
    faults.set('adaptive', { latency_ms: 300 });
    const admittedPerWave: number[] = [];
    const refusals: Answer[] = [];
    for (let wave = 0; wave < 6; wave++) {
      const answers = await Promise.all(Array.from({ length: startingLimit * 3 }, () => infer(url, 'adaptive')));
      admittedPerWave.push(answers.filter((a) => a.status === 200).length);
      refusals.push(...answers.filter((a) => a.status !== 200));
    }
    faults.set('adaptive');

    const limitAfter = await limitNow();
    assert.ok(limitAfter < startingLimit, `inference_concurrency_limit fell: ${startingLimit} -> ${limitAfter}`);
    assert.ok(refusals.length > 0, 'some requests were shed');
    for (const refused of refusals) {
      assert.equal(refused.status, 503);
      assert.match(refused.body.error, /already holds its limit of \d+ requests in flight \(adaptive\)/);
    }
    assert.ok(admittedPerWave.at(-1)! < admittedPerWave[0]!, `fewer admitted once the limit fell: ${admittedPerWave}`);
  });
});

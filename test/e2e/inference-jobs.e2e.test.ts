import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { FaultInjection } from '../../src/infra/onnx/fault-injection.js';
import { identityModelOf } from '../support/identity-models.js';
import { Status, type ServiceError } from '../support/grpc-client.js';
import { CLASSIFIER_ROW, JobsGrpcClient, pollJob, submitJob } from '../support/jobs.js';
import { parsePrometheusText } from '../support/prometheus-text.js';
import { makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Async inference jobs on one node (the embedded SQLite queue): submitted over HTTP, polled to
 * their end, cancelled, resubmitted under an Idempotency-Key, bounded, retried after a runtime
 * failure, failed for good for a request the run refuses.
 */
describe('async inference jobs over HTTP (embedded queue)', () => {
  let server: TestServer;
  let url: string;
  let faults: FaultInjection;
  before(async () => {
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'slow', onnx: classifierModel() },
      { name: 'flaky', onnx: classifierModel() },
      { name: 'identity', onnx: identityModelOf(['FP32']) },
    ]);
    server = await startTestServer(repository, { JOB_CONCURRENCY: '1', JOB_MAX_PENDING: '2', JOB_RETRY_BACKOFF_MS: '10', MAX_RESPONSE_BYTES: '1024' });
    url = server.url;
    faults = server.server.app.get(FaultInjection);
  });
  after(() => server.close());

  it('answers 202 with Location, then SUCCEEDED with the very outputs of a synchronous infer', async () => {
    const submitted = await submitJob(url, 'classifier', CLASSIFIER_ROW);
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id = submitted.body.id as string;
    assert.equal(submitted.headers.get('location'), `/v2/jobs/${id}`);
    assert.equal(submitted.body.model_name, 'classifier');
    assert.ok(['PENDING', 'RUNNING', 'SUCCEEDED'].includes(submitted.body.state), submitted.body.state);
    const job = await pollJob(url, id);
    assert.equal(job.state, 'SUCCEEDED', JSON.stringify(job));
    assert.equal(job.attempts, 1);
    assert.ok(Date.parse(job.finished_at) >= Date.parse(job.created_at));
    assert.ok(Date.parse(job.expires_at) > Date.parse(job.finished_at), 'kept for JOB_RESULT_TTL_MS');
    const direct = await postJson(`${url}/v2/models/classifier/infer`, CLASSIFIER_ROW);
    assert.equal(job.response.model_name, 'classifier');
    assert.equal(job.response.model_version, '1');
    assert.deepEqual(job.response.outputs, direct.body.outputs);
  });

  it('answers a resubmission under the same Idempotency-Key with the same job (200), and refuses the key for another request (422)', async () => {
    const first = await submitJob(url, 'classifier', CLASSIFIER_ROW, 'order-17');
    assert.equal(first.status, 202);
    const again = await submitJob(url, 'classifier', CLASSIFIER_ROW, 'order-17');
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.id, first.body.id);
    assert.equal(again.headers.get('location'), `/v2/jobs/${first.body.id}`);
    await pollJob(url, first.body.id);
    const afterDone = await submitJob(url, 'classifier', CLASSIFIER_ROW, 'order-17');
    assert.equal(afterDone.body.id, first.body.id);
    assert.equal(afterDone.body.state, 'SUCCEEDED', 'the finished job, not a new run');
    const other = { inputs: [{ ...CLASSIFIER_ROW.inputs[0], data: [1, 2, 3, 4] }] };
    const reused = await submitJob(url, 'classifier', other, 'order-17');
    assert.equal(reused.status, 422, JSON.stringify(reused.body));
    assert.match(reused.body.error, /Idempotency-Key 'order-17' was used for another request/);
    // The same key for another model is another job.
    const elsewhere = await submitJob(url, 'slow', CLASSIFIER_ROW, 'order-17');
    assert.equal(elsewhere.status, 202);
    assert.notEqual(elsewhere.body.id, first.body.id);
    await pollJob(url, elsewhere.body.id);
    const badKey = await submitJob(url, 'classifier', CLASSIFIER_ROW, 'bad key with spaces');
    assert.equal(badKey.status, 400);
    assert.match(badKey.body.error, /Idempotency-Key must be 1 to 255 visible ASCII characters/);
  });

  it('refuses a bad request at once, as infer does (no job): wrong shape 400, unknown model 404; unknown job 404', async () => {
    const badShape = await submitJob(url, 'classifier', { inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] });
    assert.equal(badShape.status, 400, JSON.stringify(badShape.body));
    assert.match(badShape.body.error, /input 'input' has shape \[1,3\]/);
    const unknown = await submitJob(url, 'nope', CLASSIFIER_ROW);
    assert.equal(unknown.status, 404);
    const missing = await requestJson('GET', `${url}/v2/jobs/00000000-0000-0000-0000-000000000000`);
    assert.equal(missing.status, 404);
    assert.match(missing.body.error, /does not exist, or has expired/);
    assert.equal((await requestJson('DELETE', `${url}/v2/jobs/no-such-job`)).status, 404);
    assert.equal((await requestJson('GET', `${url}/v2/jobs/${'x'.repeat(65)}`)).status, 404);
  });

  it('holds JOB_MAX_PENDING (503 + Retry-After past it), cancels a PENDING and a RUNNING job, and runs the rest', async () => {
    faults.set('slow', { latency_ms: 3000 });
    try {
      const running = await submitJob(url, 'slow', CLASSIFIER_ROW);
      await pollJob(url, running.body.id, (job) => job.state === 'RUNNING');
      const waiting = await submitJob(url, 'classifier', CLASSIFIER_ROW);
      const next = await submitJob(url, 'classifier', CLASSIFIER_ROW);
      assert.equal(waiting.body.state, 'PENDING');
      assert.equal(next.body.state, 'PENDING');
      const refused = await submitJob(url, 'classifier', CLASSIFIER_ROW);
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.match(refused.body.error, /2 jobs are pending already \(JOB_MAX_PENDING\)/);

      const cancelledWaiting = await requestJson('DELETE', `${url}/v2/jobs/${waiting.body.id}`);
      assert.equal(cancelledWaiting.status, 200);
      assert.equal(cancelledWaiting.body.state, 'CANCELLED');
      const cancelledRunning = await requestJson('DELETE', `${url}/v2/jobs/${running.body.id}`);
      assert.equal(cancelledRunning.body.state, 'CANCELLED');
      assert.equal(cancelledRunning.body.attempts, 1);
      // The slot is free again: the next job runs to its end; the cancelled ones stay cancelled.
      const done = await pollJob(url, next.body.id);
      assert.equal(done.state, 'SUCCEEDED');
      assert.equal((await requestJson('GET', `${url}/v2/jobs/${waiting.body.id}`)).body.state, 'CANCELLED');
      assert.equal((await requestJson('GET', `${url}/v2/jobs/${running.body.id}`)).body.state, 'CANCELLED');
      const again = await requestJson('DELETE', `${url}/v2/jobs/${next.body.id}`);
      assert.equal(again.status, 409);
      assert.match(again.body.error, /has already succeeded/);
    } finally {
      faults.set('slow');
    }
  });

  it('retries a run the runtime failed (with backoff) and succeeds; fails for good, without a retry, a request the run refuses', async () => {
    // Every other run of 'flaky' fails: after a successful infer, the next run (the job's first) fails.
    faults.set('flaky', { error_rate: 0.5 });
    let last = 0;
    for (let i = 0; i < 2 && last !== 200; i++) last = (await postJson(`${url}/v2/models/flaky/infer`, CLASSIFIER_ROW)).status;
    assert.equal(last, 200);
    const retried = await pollJob(url, (await submitJob(url, 'flaky', CLASSIFIER_ROW)).body.id);
    assert.equal(retried.state, 'SUCCEEDED', JSON.stringify(retried));
    assert.equal(retried.attempts, 2, 'one failed run, then one that succeeded');

    // 300 FP32 elements back: past MAX_RESPONSE_BYTES (1024), which only the run can tell (a dynamic dim).
    const large = { inputs: [{ name: 'in_fp32', shape: [1, 300], datatype: 'FP32', data: Array.from({ length: 300 }, (_, i) => i) }] };
    const failed = await pollJob(url, (await submitJob(url, 'identity', large)).body.id);
    assert.equal(failed.state, 'FAILED', JSON.stringify(failed));
    assert.equal(failed.attempts, 1, 'not retried');
    assert.equal(failed.error_code, 'INFERENCE.RESPONSE_TOO_LARGE');
    assert.match(failed.error, /MAX_RESPONSE_BYTES/);
    assert.equal(failed.response, undefined);
  });

  it('speaks gRPC too (onnx_serving.InferenceJobService): SubmitJob a ModelInferRequest, GetJob until SUCCEEDED with ModelInfer\'s response, CancelJob', async () => {
    const client = new JobsGrpcClient(server.server.grpcAddress);
    try {
      const request = { model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '4'], contents: { fp32_contents: [6.7, 3.0, 5.2, 2.3] } }] };
      const submitted = await client.call('SubmitJob', request, { 'idempotency-key': 'grpc-1' });
      assert.equal(submitted.created, true);
      assert.equal(submitted.model_name, 'classifier');
      const again = await client.call('SubmitJob', request, { 'idempotency-key': 'grpc-1' });
      assert.equal(again.id, submitted.id);
      assert.equal(again.created, false);
      let job = await client.call('GetJob', { id: submitted.id });
      while (job.state !== 'SUCCEEDED' && job.state !== 'FAILED') job = await client.call('GetJob', { id: submitted.id });
      assert.equal(job.state, 'SUCCEEDED', JSON.stringify(job));
      assert.equal(job.response.model_name, 'classifier');
      const http = await pollJob(url, submitted.id);
      const label = job.response.outputs.find((o: any) => o.name === 'label');
      assert.deepEqual(label.contents.int64_contents, http.response.outputs.find((o: any) => o.name === 'label').data.map(String));
      await assert.rejects(client.call('CancelJob', { id: submitted.id }), (error: ServiceError) => error.code === Status.FAILED_PRECONDITION && /already succeeded/.test(error.details));
      await assert.rejects(client.call('GetJob', { id: 'no-such-job' }), (error: ServiceError) => error.code === Status.NOT_FOUND);
      const bad = { model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', '3'], contents: { fp32_contents: [1, 2, 3] } }] };
      await assert.rejects(client.call('SubmitJob', bad), (error: ServiceError) => error.code === Status.INVALID_ARGUMENT && /shape \[1,3\]/.test(error.details));
      await assert.rejects(client.call('SubmitJob', request, { 'idempotency-key': 'grpc-1 x' }), (error: ServiceError) => error.code === Status.INVALID_ARGUMENT);
    } finally {
      client.close();
    }
  });

  it('exports jobs by state, the oldest pending age and the time to start', async () => {
    const metrics = await fetch(server.server.metricsUrl!).then((r) => r.text());
    const samples = parsePrometheusText(metrics);
    const jobs = (state: string) => samples.find((s) => s.name === 'async_inference_jobs' && s.labels.state === state)?.value;
    assert.ok(jobs('SUCCEEDED')! >= 4, metrics);
    assert.ok(jobs('CANCELLED')! >= 2);
    assert.ok(jobs('FAILED')! >= 1);
    assert.equal(jobs('PENDING'), 0);
    assert.equal(samples.find((s) => s.name === 'async_inference_job_oldest_pending_age_seconds')?.value, 0);
    assert.ok(samples.find((s) => s.name === 'async_inference_job_start_delay_seconds_count')!.value >= 6);
  });
});

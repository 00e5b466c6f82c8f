import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifierModel, heavyModel } from '../../scripts/build-models.js';
import { engineShows, schedulerShows } from '../support/engine-state.js';
import { InferenceClient, rawOf, Status, type ModelInferRequest, type ServiceError } from '../support/grpc-client.js';
import { parsePrometheusText, samplesOf, seriesKey, valueOf, type Sample } from '../support/prometheus-text.js';
import { faultyClassifierModel } from '../support/rollout-models.js';
import { bearer, getJson, makeRepository, modelStatistics, postJson, postJsonWith, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * The Prometheus metrics, read as Prometheus reads them: GET /metrics on METRICS_PORT, parsed from
 * the text format. Counters are compared before and after what a test does (the registry is the
 * process's, and other tests of this file add to it), never durations. The busy models are
 * heavyModel cut to a fraction of a second per run; every step waits for what the server shows
 * (GET /health, the metrics, an answer), not for time to pass.
 */
const TOKEN = 'metrics-test-admin-token-0123456789';
const BUSY_MODEL = heavyModel(4096, 250);
const busyModel = (name: string, instances: number, dynamicBatching?: object) => ({
  name,
  onnx: BUSY_MODEL,
  config: {
    max_batch_size: 0, // the model's input is [1,256]: no batch dimension
    instance_group: [{ count: instances, kind: 'KIND_CPU' }],
    parameters: { intra_op_thread_count: { string_value: '1' } },
    ...(dynamicBatching && { dynamic_batching: dynamicBatching }),
  },
});
/** A batch leaves only when it holds 4 rows (or after 10 s): which requests share a run does not depend on timing. */
const BATCHES_OF_4 = { max_batch_size: 8, dynamic_batching: { preferred_batch_size: [4], max_queue_delay_microseconds: 10_000_000 } };

const MODELS = ['batched', 'cancels', 'classifier', 'deadlines', 'faulty', 'full', 'pair', 'retired', 'waiting'] as const;
const VERSION_STATES = ['UNKNOWN', 'LOADING', 'READY', 'UNLOADING', 'UNAVAILABLE'];
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', '_other'];
const REASONS = ['rejected', 'timeout', 'cancelled', 'invalid', 'runtime', 'unavailable', 'not_found'];

const SAMPLE = [6.7, 3.0, 5.2, 2.3];
const classifyBody = (rows = 1) => ({ inputs: [{ name: 'input', shape: [rows, 4], datatype: 'FP32', data: Array.from({ length: rows }, () => SAMPLE).flat() }] });
const classifyGrpc = (model: string, rows = 1, version?: string): ModelInferRequest => ({
  model_name: model,
  model_version: version,
  inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 4], contents: { fp32_contents: Array.from({ length: rows }, () => SAMPLE).flat() } }],
});
const X = [{ name: 'x', shape: [1, 256], datatype: 'FP32', data: new Array<number>(256).fill(0.5) }];
const xGrpc = (model: string): ModelInferRequest => ({
  model_name: model,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 256] }],
  raw_input_contents: [rawOf(new Float32Array(256).fill(0.5))],
});

interface Scrape {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
  readonly samples: Sample[];
}

/** Settles with the answer or the error, never rejects. */
function settled<T>(answer: Promise<T>): Promise<T | ServiceError> {
  return answer.then(
    (response) => response,
    (error: ServiceError) => error,
  );
}
const isError = (outcome: unknown): outcome is ServiceError => outcome instanceof Error;

describe('Prometheus metrics', () => {
  let server: TestServer;
  let url: string;
  let metricsUrl: string;
  let client: InferenceClient;

  async function scrape(): Promise<Scrape> {
    const response = await fetch(metricsUrl);
    const text = await response.text();
    return { status: response.status, contentType: response.headers.get('content-type'), text, samples: response.status === 200 ? parsePrometheusText(text) : [] };
  }

  /** Scrapes until `check` holds (what is counted after the answer was sent: HTTP requests, a client gone); returns that scrape. */
  async function eventually(what: string, check: (samples: Sample[]) => boolean): Promise<Sample[]> {
    const until = Date.now() + 5000;
    for (;;) {
      const { samples } = await scrape();
      if (check(samples)) return samples;
      if (Date.now() > until) assert.fail(`the metrics never showed ${what}`);
      await sleep(5);
    }
  }

  const failures = (samples: Sample[], model: string, version: string, reason: string) => valueOf(samples, 'inference_request_failure_total', { model, version, reason });
  const inferOn = (model: string, options: { headers?: Record<string, string>; signal?: AbortSignal } = {}) =>
    postJsonWith(`${url}/v2/models/${model}/infer`, { inputs: X }, options);

  /** Makes the model's instance busy (the model has one); returns its answer, to await. */
  async function occupy(model: string): Promise<{ running: Promise<{ status: number }> }> {
    const running = inferOn(model);
    await engineShows(url, model, 1, 0);
    return { running };
  }

  before(async () => {
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'batched', onnx: classifierModel(), config: BATCHES_OF_4 },
      { name: 'faulty', onnx: faultyClassifierModel() },
      { name: 'retired', onnx: classifierModel() },
      busyModel('full', 1, { default_queue_policy: { max_queue_size: 1 } }),
      busyModel('deadlines', 1),
      busyModel('waiting', 1),
      busyModel('cancels', 1),
      busyModel('pair', 2),
    ]);
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN });
    url = server.url;
    metricsUrl = server.server.metricsUrl ?? assert.fail('no metrics URL: ALLOW_METRICS is on by default');
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  describe('the scrape endpoint', () => {
    it('answers GET /metrics on the metrics port in the Prometheus text format', async () => {
      assert.notEqual(new URL(metricsUrl).port, new URL(url).port, 'the metrics have a port of their own');
      assert.equal(new URL(metricsUrl).pathname, '/metrics');
      const { status, contentType, text, samples } = await scrape();
      assert.equal(status, 200);
      assert.match(contentType ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(text, /^# TYPE inference_request_success_total counter$/m);
      assert.match(text, /^# TYPE inference_request_duration_seconds histogram$/m);
      assert.match(text, /^# TYPE model_version_state gauge$/m);
      assert.ok(samples.length > 0);
      // A query string is not another path.
      assert.equal((await fetch(`${metricsUrl}?x=1`)).status, 200);
    });

    it('answers 404 to any other path or method on the metrics port', async () => {
      const origin = new URL(metricsUrl).origin;
      for (const path of ['/', '/metrics/', '/metricsx', '/metrics/x', '/v2/health/live', '/v2/models/classifier/infer']) {
        const response = await fetch(`${origin}${path}`);
        await response.arrayBuffer();
        assert.equal(response.status, 404, path);
      }
      const post = await fetch(metricsUrl, { method: 'POST', body: '' });
      await post.arrayBuffer();
      assert.equal(post.status, 404, 'POST /metrics');
    });

    it('is not served on the API port', async () => {
      const response = await fetch(`${url}/metrics`);
      await response.arrayBuffer();
      assert.equal(response.status, 404);
      assert.equal((await fetch(`${url}/v2/health/live`)).status, 200, 'the API port answers');
    });

    it("includes prom-client's default process metrics", async () => {
      const { samples } = await scrape();
      for (const name of ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) {
        const [sample] = samplesOf(samples, name);
        assert.ok(sample, `no ${name}`);
        assert.ok(sample.value > 0, `${name} is ${sample.value}`);
      }
      const [lag] = samplesOf(samples, 'nodejs_eventloop_lag_seconds');
      assert.ok(lag, 'no nodejs_eventloop_lag_seconds');
      assert.ok(Number.isFinite(lag.value) && lag.value >= 0, `nodejs_eventloop_lag_seconds is ${lag.value}`);
    });
  });

  describe('successful inferences', () => {
    it('counts each success, with its durations, and the runs and rows as /stats shows them', async () => {
      const labels = { model: 'batched', version: '1' };
      const before = (await scrape()).samples;
      assert.equal(valueOf(before, 'inference_exec_count_total', labels), 0, 'nothing has run yet');

      // Four 1-row requests over HTTP make one run of 4 rows, two 2-row requests over gRPC another.
      const http = await Promise.all([1, 2, 3, 4].map(() => postJson(`${url}/v2/models/batched/infer`, classifyBody(1))));
      for (const answer of http) {
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.body.parameters.batch_size, 4);
      }
      const grpc = await Promise.all([1, 2].map(() => client.infer(classifyGrpc('batched', 2))));
      assert.equal(grpc.length, 2);
      const n = http.length + grpc.length;

      const after = (await scrape()).samples;
      const grew = (name: string) => valueOf(after, name, labels) - valueOf(before, name, labels);
      assert.equal(grew('inference_request_success_total'), n);
      assert.equal(grew('inference_request_duration_seconds_count'), n);
      assert.equal(grew('inference_queue_duration_seconds_count'), n);
      assert.equal(grew('inference_compute_duration_seconds_count'), n);
      assert.equal(samplesOf(after, 'inference_request_failure_total', labels).reduce((sum, s) => sum + s.value, 0), 0, 'no failure');

      const stats = await modelStatistics(url, 'batched');
      assert.equal(stats.execution_count, 2);
      assert.equal(stats.inference_count, 8);
      assert.equal(valueOf(after, 'inference_exec_count_total', labels), stats.execution_count);
      assert.equal(valueOf(after, 'inference_count_total', labels), stats.inference_count);

      // The batch-size histogram holds the runs /stats shows, by their rows.
      assert.ok(stats.batch_stats.some((b: { batch_size: number }) => b.batch_size > 1), 'a run had more than one row');
      const runsUpTo = (le: number) =>
        stats.batch_stats.filter((b: { batch_size: number }) => b.batch_size <= le).reduce((sum: number, b: { compute_infer: { count: number } }) => sum + b.compute_infer.count, 0);
      const buckets = samplesOf(after, 'inference_batch_size_bucket', labels);
      assert.ok(buckets.length > 2, 'the histogram has buckets');
      for (const bucket of buckets) {
        const le = bucket.labels.le === '+Inf' ? Infinity : Number(bucket.labels.le);
        assert.equal(bucket.value, runsUpTo(le), `inference_batch_size_bucket{le="${bucket.labels.le}"}`);
      }
      assert.equal(valueOf(after, 'inference_batch_size_bucket', { ...labels, le: '2' }), 0);
      assert.equal(valueOf(after, 'inference_batch_size_bucket', { ...labels, le: '4' }), 2);
      assert.equal(valueOf(after, 'inference_batch_size_count', labels), stats.execution_count);
      assert.equal(valueOf(after, 'inference_batch_size_sum', labels), stats.inference_count);
    });
  });

  describe('failures, by reason', () => {
    it('invalid: a tensor of the wrong shape over HTTP, a tensor that does not decode over gRPC', async () => {
      const before = (await scrape()).samples;
      const badShape = await postJson(`${url}/v2/models/classifier/infer`, { inputs: [{ name: 'input', shape: [1, 5], datatype: 'FP32', data: [1, 2, 3, 4, 5] }] });
      assert.equal(badShape.status, 400, JSON.stringify(badShape.body));
      // 12 bytes for a [1,4] FP32 tensor: the request does not decode, so no version was chosen for it.
      const badTensor = await settled(
        client.infer({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4] }], raw_input_contents: [rawOf(new Float32Array(3))] }),
      );
      assert.ok(isError(badTensor));
      assert.equal(badTensor.code, Status.INVALID_ARGUMENT, badTensor.details);

      const after = (await scrape()).samples;
      assert.equal(failures(after, 'classifier', '1', 'invalid') - failures(before, 'classifier', '1', 'invalid'), 1, 'the bad shape, on the version it was checked against');
      assert.equal(failures(after, 'classifier', '_unknown', 'invalid') - failures(before, 'classifier', '_unknown', 'invalid'), 1, 'the bad tensor');
      assert.equal(
        valueOf(after, 'inference_request_success_total', { model: 'classifier', version: '1' }),
        valueOf(before, 'inference_request_success_total', { model: 'classifier', version: '1' }),
      );
    });

    it('not_found: an unknown model under model="_unknown", an unknown version of a known model under version="_unknown"', async () => {
      const before = (await scrape()).samples;
      const http = await postJson(`${url}/v2/models/no_such_model/infer`, classifyBody());
      assert.equal(http.status, 404);
      const grpc = await settled(client.infer(classifyGrpc('no_such_model_either')));
      assert.ok(isError(grpc));
      assert.equal(grpc.code, Status.NOT_FOUND);
      const version = await postJson(`${url}/v2/models/classifier/versions/7/infer`, classifyBody());
      assert.equal(version.status, 404);

      const after = (await scrape()).samples;
      assert.equal(failures(after, '_unknown', '_unknown', 'not_found') - failures(before, '_unknown', '_unknown', 'not_found'), 2);
      assert.equal(failures(after, 'classifier', '_unknown', 'not_found') - failures(before, 'classifier', '_unknown', 'not_found'), 1);
      for (const sample of after) {
        assert.ok(!Object.values(sample.labels).some((v) => v.includes('no_such_model')), seriesKey(sample));
        assert.notEqual(sample.labels.version, '7', seriesKey(sample));
      }
    });

    it('runtime: a model that fails to run', async () => {
      const before = (await scrape()).samples;
      const answer = await postJson(`${url}/v2/models/faulty/infer`, classifyBody());
      assert.equal(answer.status, 500, JSON.stringify(answer.body));
      const after = (await scrape()).samples;
      assert.equal(failures(after, 'faulty', '1', 'runtime') - failures(before, 'faulty', '1', 'runtime'), 1);
      assert.equal(valueOf(after, 'inference_request_success_total', { model: 'faulty', version: '1' }), 0);
    });

    it('rejected: a full queue, refused before reading over HTTP and before its tensors are read over gRPC', async () => {
      const before = (await scrape()).samples;
      const { running } = await occupy('full');
      const queuedClient = new AbortController();
      const queued = inferOn('full', { signal: queuedClient.signal }).catch((error: Error) => error);
      await schedulerShows(url, 'full', 1);

      // Not JSON: a 400 would show it had been read.
      const http = await fetch(`${url}/v2/models/full/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
      await http.arrayBuffer();
      assert.equal(http.status, 503);
      const grpc = await settled(client.infer(xGrpc('full')));
      assert.ok(isError(grpc));
      assert.equal(grpc.code, Status.UNAVAILABLE, grpc.details);

      const during = (await scrape()).samples;
      assert.equal(failures(during, 'full', '1', 'rejected') - failures(before, 'full', '1', 'rejected'), 2);
      assert.equal(failures(during, '_unknown', '_unknown', 'rejected'), 0);

      // The queued one is let go rather than computed.
      queuedClient.abort();
      await queued;
      assert.equal((await running).status, 200);
      await engineShows(url, 'full', 0, 0);
    });

    it('timeout: a queued request whose x-timeout-ms passes behind a slow run', async () => {
      const before = (await scrape()).samples;
      const { running } = await occupy('deadlines');
      const expired = await inferOn('deadlines', { headers: { 'x-timeout-ms': '100' } });
      assert.equal(expired.status, 504);
      const after = (await scrape()).samples;
      assert.equal(failures(after, 'deadlines', '1', 'timeout') - failures(before, 'deadlines', '1', 'timeout'), 1);
      assert.equal((await running).status, 200);
      await engineShows(url, 'deadlines', 0, 0);
    });

    it(
      'timeout: a queued gRPC call whose deadline passes behind a slow run',
      async () => {
        const before = (await scrape()).samples;
        const { running } = await occupy('deadlines');
        const expired = await settled(client.infer(xGrpc('deadlines'), { deadlineMs: 100 }));
        assert.ok(isError(expired));
        assert.equal(expired.code, Status.DEADLINE_EXCEEDED);
        const after = await eventually('the expired call counted', (samples) =>
          ['timeout', 'cancelled'].some((reason) => failures(samples, 'deadlines', '1', reason) > failures(before, 'deadlines', '1', reason)),
        );
        assert.equal((await running).status, 200);
        await engineShows(url, 'deadlines', 0, 0);
        assert.equal(failures(after, 'deadlines', '1', 'cancelled') - failures(before, 'deadlines', '1', 'cancelled'), 0, 'not counted as cancelled');
        assert.equal(failures(after, 'deadlines', '1', 'timeout') - failures(before, 'deadlines', '1', 'timeout'), 1);
      },
    );

    it('cancelled: a queued HTTP request whose client went away, and a queued gRPC call the client cancelled', async () => {
      const before = (await scrape()).samples;
      const { running } = await occupy('cancels');
      const httpClient = new AbortController();
      const http = inferOn('cancels', { signal: httpClient.signal });
      const call = client.start('ModelInfer', xGrpc('cancels'));
      const grpc = settled(call.response);
      await schedulerShows(url, 'cancels', 2);
      httpClient.abort();
      await assert.rejects(http, { name: 'AbortError' });
      call.cancel();
      const outcome = await grpc;
      assert.ok(isError(outcome));
      assert.equal(outcome.code, Status.CANCELLED);

      await eventually('two cancelled requests', (samples) => failures(samples, 'cancels', '1', 'cancelled') - failures(before, 'cancels', '1', 'cancelled') === 2);
      assert.equal((await running).status, 200);
      await engineShows(url, 'cancels', 0, 0);
      const after = (await scrape()).samples;
      assert.equal(failures(after, 'cancels', '1', 'cancelled') - failures(before, 'cancels', '1', 'cancelled'), 2);
      assert.equal(failures(after, 'cancels', '1', 'timeout'), 0);
    });

    it('unavailable: a version unloaded through the admin API answers 503, counted as unavailable; its state becomes UNAVAILABLE', async () => {
      const labels = { model: 'retired', version: '1' };
      const ready = (await scrape()).samples;
      assert.equal(valueOf(ready, 'model_version_state', { ...labels, state: 'READY' }), 1);

      const unload = await requestJson('POST', `${url}/admin/models/retired/versions/1/unload`, { headers: bearer(TOKEN), body: { force: true } });
      assert.equal(unload.status, 200, JSON.stringify(unload.body));
      const named = await postJson(`${url}/v2/models/retired/versions/1/infer`, classifyBody());
      assert.equal(named.status, 503, JSON.stringify(named.body));
      const unnamed = await postJson(`${url}/v2/models/retired/infer`, classifyBody());
      assert.equal(unnamed.status, 503, JSON.stringify(unnamed.body));
      const grpc = await settled(client.infer(classifyGrpc('retired', 1, '1')));
      assert.ok(isError(grpc));
      assert.equal(grpc.code, Status.UNAVAILABLE, grpc.details);

      const after = (await scrape()).samples;
      assert.equal(failures(after, 'retired', '1', 'unavailable') - failures(ready, 'retired', '1', 'unavailable'), 2, 'the requests naming version 1');
      assert.equal(failures(after, 'retired', '_unknown', 'unavailable') - failures(ready, 'retired', '_unknown', 'unavailable'), 1, 'the request naming no version');
      for (const state of VERSION_STATES) {
        assert.equal(valueOf(after, 'model_version_state', { ...labels, state }), state === 'UNAVAILABLE' ? 1 : 0, state);
      }
      assert.deepEqual(samplesOf(after, 'inference_workers', labels), [], 'an unloaded version has no workers');
    });
  });

  describe('gauges of the present', () => {
    it('model_version_state: one series per state of each loaded version, 1 for READY', async () => {
      const { samples } = await scrape();
      for (const model of MODELS.filter((m) => m !== 'retired')) {
        const series = samplesOf(samples, 'model_version_state', { model });
        assert.deepEqual(series.map((s) => s.labels.state).sort(), [...VERSION_STATES].sort(), model);
        for (const sample of series) {
          assert.equal(sample.labels.version, '1');
          assert.equal(sample.value, sample.labels.state === 'READY' ? 1 : 0, seriesKey(sample));
        }
      }
    });

    it('inference_workers: busy and idle add up to the instances, and busy is 1 during a run', async () => {
      const labels = { model: 'pair', version: '1' };
      const workers = (samples: Sample[], state: string) => valueOf(samples, 'inference_workers', { ...labels, state });
      const idle = (await scrape()).samples;
      assert.deepEqual([workers(idle, 'busy'), workers(idle, 'idle')], [0, 2]);
      // Every loaded version's workers add up to its instances as GET /health shows them.
      const { body } = await getJson(`${url}/health`);
      for (const pool of body.details.workers.pools as { key: string; instances: number }[]) {
        const [model, version] = pool.key.split('/');
        const sum = samplesOf(idle, 'inference_workers', { model: model!, version: version! }).reduce((total, s) => total + s.value, 0);
        assert.equal(sum, pool.instances, pool.key);
      }

      const running = inferOn('pair');
      const during = await eventually('a busy worker of pair', (samples) => workers(samples, 'busy') === 1);
      assert.equal(workers(during, 'idle'), 1);
      await engineShows(url, 'pair', 1, 0);
      assert.equal((await running).status, 200);
      const done = await eventually('no busy worker of pair', (samples) => workers(samples, 'busy') === 0);
      assert.equal(workers(done, 'idle'), 2);
    });

    it('inference_pending_requests: the requests queued behind a busy instance', async () => {
      const labels = { model: 'waiting', version: '1' };
      const { running } = await occupy('waiting');
      const clients = [new AbortController(), new AbortController()];
      const queued = clients.map((c) => inferOn('waiting', { signal: c.signal }).catch((error: Error) => error));
      await schedulerShows(url, 'waiting', 2);
      const during = (await scrape()).samples;
      assert.equal(valueOf(during, 'inference_pending_requests', labels), 2);
      assert.equal(valueOf(during, 'inference_workers', { ...labels, state: 'busy' }), 1);
      assert.equal(valueOf(during, 'inference_workers', { ...labels, state: 'idle' }), 0);

      for (const c of clients) c.abort();
      await Promise.all(queued);
      await schedulerShows(url, 'waiting', 0);
      assert.equal(valueOf((await scrape()).samples, 'inference_pending_requests', labels), 0);
      assert.equal((await running).status, 200);
      await engineShows(url, 'waiting', 0, 0);
    });
  });

  describe('HTTP requests', () => {
    it('are counted by route template, and a path no route matches under "_unmatched"', async () => {
      const infer = { method: 'POST', route: '/v2/models/:model/infer', status: '200' };
      const unmatched = { method: 'GET', route: '_unmatched', status: '404' };
      const before = (await scrape()).samples;
      for (let i = 0; i < 3; i++) assert.equal((await postJson(`${url}/v2/models/classifier/infer`, classifyBody())).status, 200);
      for (const path of ['/no/such/path', '/another-path-nobody-serves', '/metrics']) {
        const response = await fetch(`${url}${path}`);
        await response.arrayBuffer();
        assert.equal(response.status, 404, path);
      }
      const after = await eventually('3 inferences and 3 unmatched requests', (samples) =>
        valueOf(samples, 'http_requests_total', infer) - valueOf(before, 'http_requests_total', infer) === 3 &&
        valueOf(samples, 'http_requests_total', unmatched) - valueOf(before, 'http_requests_total', unmatched) === 3,
      );
      const durations = { method: 'POST', route: '/v2/models/:model/infer' };
      assert.equal(valueOf(after, 'http_request_duration_seconds_count', durations) - valueOf(before, 'http_request_duration_seconds_count', durations), 3);
      for (const sample of samplesOf(after, 'http_requests_total')) {
        assert.ok(!/classifier|no\/such|nobody/.test(sample.labels.route ?? ''), seriesKey(sample));
      }
    });

    it('counts the 503 of a request refused before its body was read, under its route', async () => {
      const refused = { method: 'POST', route: '/v2/models/:model/infer', status: '503' };
      const before = (await scrape()).samples;
      const { running } = await occupy('full');
      const queuedClient = new AbortController();
      const queued = inferOn('full', { signal: queuedClient.signal }).catch((error: Error) => error);
      await schedulerShows(url, 'full', 1);
      const http = await fetch(`${url}/v2/models/full/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      await http.arrayBuffer();
      assert.equal(http.status, 503);
      queuedClient.abort();
      await queued;
      assert.equal((await running).status, 200);
      await engineShows(url, 'full', 0, 0);
      const after = (await scrape()).samples;
      assert.equal(failures(after, 'full', '1', 'rejected') - failures(before, 'full', '1', 'rejected'), 1);
      assert.equal(valueOf(after, 'http_requests_total', refused) - valueOf(before, 'http_requests_total', refused), 1);
    });
    it(
      'counts the requests the router refuses before any route: 414 for a path parameter over maxParamLength, 400 for a malformed escape',
      async () => {
        const before = (await scrape()).samples;
        const total = (samples: Sample[]) => samplesOf(samples, 'http_requests_total').reduce((sum, s) => sum + s.value, 0);
        const byStatus = (samples: Sample[], status: string) => samplesOf(samples, 'http_requests_total', { status }).reduce((sum, s) => sum + s.value, 0);
        const tooLong = await fetch(`${url}/v2/models/${'n'.repeat(300)}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        assert.equal(tooLong.status, 414);
        assert.match(await tooLong.text(), /FST_ERR_MAX_PARAM_LENGTH/, 'refused by the router');
        const badEscape = await fetch(`${url}/v2/models/%E0%A4%A/ready`);
        assert.equal(badEscape.status, 400);
        assert.match(await badEscape.text(), /FST_ERR_BAD_URL/, 'refused by the router');
        // A request counted after them: once it is, they would have been.
        const sentinel = await fetch(`${url}/no-such-path`);
        await sentinel.arrayBuffer();
        const unmatched = { method: 'GET', route: '_unmatched', status: '404' };
        const after = await eventually('the request sent last', (samples) => valueOf(samples, 'http_requests_total', unmatched) > valueOf(before, 'http_requests_total', unmatched));
        assert.deepEqual(
          { '414': byStatus(after, '414') - byStatus(before, '414'), '400': byStatus(after, '400') - byStatus(before, '400'), total: total(after) - total(before) },
          { '414': 1, '400': 1, total: 3 },
        );
      },
    );
  });

  describe('agreement with /stats', () => {
    it("counts every model's runs and rows as its /stats does, after all the tests above", async () => {
      const { samples } = await scrape();
      for (const model of MODELS.filter((m) => m !== 'retired')) {
        const stats = await modelStatistics(url, model);
        const labels = { model, version: '1' };
        assert.equal(valueOf(samples, 'inference_exec_count_total', labels), stats.execution_count, `${model}: runs`);
        assert.equal(valueOf(samples, 'inference_count_total', labels), stats.inference_count, `${model}: rows`);
        assert.equal(valueOf(samples, 'inference_request_success_total', labels), stats.inference_stats.success.count, `${model}: successes`);
      }
    });
  });

  describe('cardinality', () => {
    it('stays bounded by construction: thousands of requests for random models, versions and paths add a few fixed series and none of their names', async () => {
      const tokens = new Set<string>();
      const versions = new Set<string>();
      const token = () => {
        const t = `zq${randomBytes(6).toString('hex')}`;
        tokens.add(t);
        return t;
      };
      const version = () => {
        const v = String(1000 + randomInt(1_000_000_000));
        versions.add(v);
        return v;
      };
      const baseline = (await scrape()).samples;

      const send = (method: string, path: string, body?: unknown) =>
        fetch(`${url}${path}`, {
          method,
          headers: body === undefined ? undefined : { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        }).then((response) => response.arrayBuffer().then(() => response.status));
      const kinds: Record<string, () => Promise<number>> = {
        unknownModel: () => send('POST', `/v2/models/${token()}/infer`, classifyBody()),
        unknownModelVersion: () => send('POST', `/v2/models/${token()}/versions/${version()}/infer`, classifyBody()),
        metadata: () => send('GET', `/v2/models/${token()}`),
        stats: () => send('GET', `/v2/models/${token()}/versions/${version()}/stats`),
        path: () => send('GET', `/${token()}/${token()}`),
        postPath: () => send('POST', `/${token()}`, { a: 1 }),
        // The longest parameter the router takes is 256 characters (maxParamLength).
        longName: () => send('GET', `/v2/models/${token()}${'x'.repeat(200)}/config`),
        unknownVersion: () => send('POST', `/v2/models/classifier/versions/${version()}/infer`, classifyBody()),
        badVersion: () => send('POST', `/v2/models/classifier/versions/${token()}/infer`, classifyBody()),
        versionMetadata: () => send('GET', `/v2/models/classifier/versions/${version()}`),
        otherMethod: () => send('PROPFIND', `/v2/models/${token()}`),
      };
      const names = Object.keys(kinds);
      const sentOf = new Map<string, number>();
      const statuses = new Map<number, number>();
      const TOTAL_HTTP = 3000;
      const CHUNK = 150;
      for (let sent = 0; sent < TOTAL_HTTP; sent += CHUNK) {
        const chunk = Array.from({ length: CHUNK }, (_, i) => names[(sent + i) % names.length]!);
        for (const name of chunk) sentOf.set(name, (sentOf.get(name) ?? 0) + 1);
        for (const status of await Promise.all(chunk.map((name) => kinds[name]!()))) statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      assert.ok(!statuses.has(200) && !statuses.has(500), `every request failed, as a client error: ${JSON.stringify([...statuses])}`);
      const GRPC = { unknownModel: 200, unknownVersion: 50, badVersion: 50 };
      const grpc = await Promise.all([
        ...Array.from({ length: GRPC.unknownModel }, () => settled(client.infer(classifyGrpc(token())))),
        ...Array.from({ length: GRPC.unknownVersion }, () => settled(client.infer(classifyGrpc('classifier', 1, version())))),
        ...Array.from({ length: GRPC.badVersion }, () => settled(client.infer(classifyGrpc('classifier', 1, token())))),
      ]);
      assert.ok(grpc.every(isError), 'every gRPC call failed');

      // The HTTP requests are counted after they are answered: wait until the last ones are.
      const grown = (samples: Sample[]) => samplesOf(samples, 'http_requests_total').reduce((sum, s) => sum + s.value, 0) - samplesOf(baseline, 'http_requests_total').reduce((sum, s) => sum + s.value, 0);
      const after = await eventually(`${TOTAL_HTTP} more HTTP requests`, (samples) => grown(samples) >= TOTAL_HTTP);
      assert.equal(grown(after), TOTAL_HTTP, 'each request counted once (the scrapes are on the metrics port, not counted)');

      // The inferences were counted, under the fixed labels.
      const failed = (model: string, version: string, reason: string) => failures(after, model, version, reason) - failures(baseline, model, version, reason);
      assert.equal(failed('_unknown', '_unknown', 'not_found'), sentOf.get('unknownModel')! + sentOf.get('unknownModelVersion')! + GRPC.unknownModel);
      assert.equal(failed('classifier', '_unknown', 'not_found'), sentOf.get('unknownVersion')! + GRPC.unknownVersion);
      assert.equal(failed('classifier', '_unknown', 'invalid'), sentOf.get('badVersion')! + GRPC.badVersion);

      // No label value holds a name or a version that was sent.
      for (const sample of after) {
        for (const value of Object.values(sample.labels)) {
          assert.ok(!/zq[0-9a-f]{12}/.test(value) && !tokens.has(value), `${seriesKey(sample)} holds a random name`);
        }
        if (sample.labels.version !== undefined) assert.ok(!versions.has(sample.labels.version), `${seriesKey(sample)} holds a random version`);
        if (sample.labels.model !== undefined) assert.ok([...MODELS, '_unknown'].includes(sample.labels.model), seriesKey(sample));
        if (sample.labels.reason !== undefined) assert.ok(REASONS.includes(sample.labels.reason), seriesKey(sample));
        if (sample.labels.method !== undefined) assert.ok(HTTP_METHODS.includes(sample.labels.method), seriesKey(sample));
        if (sample.labels.route !== undefined) assert.ok(sample.labels.route === '_unmatched' || /^\/[a-z0-9/:_.-]*$/.test(sample.labels.route), seriesKey(sample));
      }

      // The series that appeared (a histogram counts once, whatever its buckets; process metrics aside).
      const seriesOf = (samples: Sample[]) =>
        new Set(
          samples
            .filter((s) => !s.name.startsWith('process_') && !s.name.startsWith('nodejs_'))
            .map((s) => {
              const { le: _le, ...labels } = s.labels;
              return seriesKey({ name: s.name.replace(/_(bucket|sum|count)$/, ''), labels });
            }),
        );
      const known = seriesOf(baseline);
      const added = [...seriesOf(after)].filter((key) => !known.has(key));
      // However many requests: at most, per kind of request sent, one http_requests_total series
      // (its method, route template and status) and one http_request_duration_seconds, and the three
      // failure series of model or version "_unknown" (22 when this test runs alone, fewer after the others).
      const bound = 2 * names.length + 3;
      assert.ok(added.length <= bound, `${added.length} series appeared (at most ${bound}):\n${added.join('\n')}`);
      for (const key of added) assert.match(key, /"_unknown"|"_unmatched"|"_other"|status="4\d\d"|^http_request_duration_seconds\{/, key);
    });
  });
});

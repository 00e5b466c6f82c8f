import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient, Status, type ModelInferRequest, type ServiceError } from '../support/grpc-client.js';
import { parsePrometheusText, valueOf } from '../support/prometheus-text.js';
import { spawnServer } from '../support/server-process.js';
import { getJson, makeRepository, modelStatistics, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Per-client rate limits over real sockets: a token bucket of THROTTLE_BURST requests refilled at
 * THROTTLE_RATE per second, per client (the x-api-key header or metadata, else the source address),
 * shared by HTTP and gRPC; 429 / RESOURCE_EXHAUSTED past it, with when to come back. A refused
 * request never reaches the model: /stats does not move. The rate here (1 per second) is slow
 * enough that a burst sent back to back never earns a token meanwhile.
 */
const RATE = 1;
const BURST = 3;
const ENV = { THROTTLE_RATE: String(RATE), THROTTLE_BURST: String(BURST), THROTTLE_CLIENT_HEADER: 'x-api-key' };
const MODELS = ['burst', 'refill', 'keys', 'address', 'grpc', 'stream', 'metadata', 'open'];
const ROW = [6.7, 3.0, 5.2, 2.3];
const RATE_LIMITED = /is over its rate limit of 1 requests per second \(burst 3\); retry in \d+ s/;

function infer(url: string, model: string, key?: string) {
  return requestJson('POST', `${url}/v2/models/${model}/infer`, {
    headers: key === undefined ? {} : { 'x-api-key': key },
    body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] },
  });
}

const classify = (model: string, id?: string): ModelInferRequest => ({ id, model_name: model, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] });
const keyed = (key: string) => ({ metadata: { 'x-api-key': key } });

/** What the stats say the model computed. */
async function computed(url: string, model: string): Promise<{ executions: number; inferences: number; successes: number; failures: number }> {
  const stats = await modelStatistics(url, model);
  return {
    executions: Number(stats.execution_count),
    inferences: Number(stats.inference_count),
    successes: Number(stats.inference_stats.success.count),
    failures: Number(stats.inference_stats.fail.count),
  };
}

/** Sends `count` requests one after the other; their statuses. */
async function statuses(url: string, model: string, count: number, key?: string): Promise<number[]> {
  const answers: number[] = [];
  for (let i = 0; i < count; i++) answers.push((await infer(url, model, key)).status);
  return answers;
}

function assertRateLimited(answer: { status: number; body: any; headers: Headers }): number {
  assert.equal(answer.status, 429, JSON.stringify(answer.body));
  assert.match(answer.body.error, RATE_LIMITED);
  const retryAfter = Number(answer.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${answer.headers.get('retry-after')}`);
  return retryAfter;
}

describe('per-client rate limits', () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;
  before(async () => {
    server = await startTestServer(await makeRepository(MODELS.map((name) => ({ name, onnx: classifierModel() }))), ENV);
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('answers the burst with X-RateLimit headers counting down, then 429 with Retry-After naming the limit', async () => {
    const answers = [];
    for (let i = 0; i < BURST; i++) answers.push(await infer(url, 'burst', 'alice'));
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('x-ratelimit-limit'), String(BURST));
    }
    assert.deepEqual(
      answers.map((a) => a.headers.get('x-ratelimit-remaining')),
      ['2', '1', '0'],
    );
    assert.ok(Number(answers[2]!.headers.get('x-ratelimit-reset')) >= 1, 'seconds until the bucket is full again');

    const refused = await infer(url, 'burst', 'alice');
    assertRateLimited(refused);
    assert.match(refused.body.error, /the client named by x-api-key/);
    assert.doesNotMatch(refused.body.error, /alice/, "the client's key is not echoed");
  });

  it('never lets a refused request reach the model: its statistics do not move', async () => {
    const before = await computed(url, 'burst');
    assert.equal(before.executions, BURST, 'the burst ran');
    for (let i = 0; i < 10; i++) assert.equal((await infer(url, 'burst', 'alice')).status, 429);
    await assert.rejects(client.infer(classify('burst'), keyed('alice')), (error: ServiceError) => error.code === Status.RESOURCE_EXHAUSTED);
    assert.deepEqual(await computed(url, 'burst'), before);
  });

  it('refills: once Retry-After has passed the client is served again, and not before', async () => {
    assert.deepEqual(await statuses(url, 'refill', BURST, 'bob'), [200, 200, 200]);
    const retryAfter = assertRateLimited(await infer(url, 'refill', 'bob'));
    assert.equal((await infer(url, 'refill', 'bob')).status, 429, 'a refused request does not wait in line for the next token');
    await sleep(retryAfter * 1000);
    const served = await infer(url, 'refill', 'bob');
    assert.equal(served.status, 200, JSON.stringify(served.body));
  });

  it('keeps one bucket per client named by x-api-key', async () => {
    assert.deepEqual(await statuses(url, 'keys', BURST + 1, 'carol'), [200, 200, 200, 429]);
    const dave = [];
    for (let i = 0; i < BURST; i++) dave.push(await infer(url, 'keys', 'dave'));
    assert.deepEqual(dave.map((a) => a.status), [200, 200, 200], "carol's empty bucket is not dave's");
    assert.deepEqual(dave.map((a) => a.headers.get('x-ratelimit-remaining')), ['2', '1', '0']);
    assert.equal((await infer(url, 'keys', 'carol')).status, 429, 'carol is still over her limit');
    assert.equal((await infer(url, 'keys', 'dave')).status, 429);
  });

  it('counts a request without the header by its source address, across HTTP and gRPC', async () => {
    assert.deepEqual(await statuses(url, 'address', BURST), [200, 200, 200]);
    const refused = await infer(url, 'address');
    assertRateLimited(refused);
    assert.match(refused.body.error, /the client at 127\.0\.0\.1 is over its rate limit/);
    assert.equal((await infer(url, 'address', '   ')).status, 429, 'a blank key names no client: the address counts');
    await assert.rejects(client.infer(classify('address')), (error: ServiceError) => {
      assert.equal(error.code, Status.RESOURCE_EXHAUSTED, error.details);
      assert.match(error.details, /the client at 127\.0\.0\.1/);
      return true;
    });
    assert.equal((await infer(url, 'address', 'erin')).status, 200, 'a named client from the same address has its own bucket');
  });

  it('answers gRPC ModelInfer past the burst with RESOURCE_EXHAUSTED and a retry-after trailer, in the bucket HTTP uses', async () => {
    for (let i = 0; i < BURST - 1; i++) await client.infer(classify('grpc'), keyed('frank'));
    assert.equal((await infer(url, 'grpc', 'frank')).status, 200, 'the third token, taken over HTTP');
    await assert.rejects(client.infer(classify('grpc'), keyed('frank')), (error: ServiceError) => {
      assert.equal(error.code, Status.RESOURCE_EXHAUSTED, error.details);
      assert.match(error.details, RATE_LIMITED);
      const [retryAfter] = error.metadata.get('retry-after');
      assert.ok(Number(retryAfter) >= 1, `retry-after: ${retryAfter}`);
      return true;
    });
    assert.equal((await computed(url, 'grpc')).executions, BURST);
  });

  it("answers a stream's requests past the quota with an error_message naming the rate limit; the earlier ones are served", async () => {
    const stream = client.stream({ ...keyed('grace'), deadlineMs: 30_000 });
    const ids = Array.from({ length: 6 }, (_, i) => `s${i}`);
    for (const id of ids) stream.write(classify('stream', id));
    stream.end();
    const answers = await stream.finished;
    assert.equal(answers.length, ids.length, 'every request is answered, the stream goes on past a refusal');
    const byId = new Map(answers.map((answer) => [answer.infer_response?.id, answer]));
    assert.deepEqual([...byId.keys()].sort(), ids);
    const served = ids.filter((id) => !byId.get(id)!.error_message);
    const refused = ids.filter((id) => byId.get(id)!.error_message);
    // Opening the stream takes no token; each request takes one.
    assert.deepEqual(served, ids.slice(0, BURST), 'the first requests, while tokens last');
    assert.deepEqual(refused, ids.slice(BURST));
    for (const id of refused) assert.match(byId.get(id)!.error_message!, RATE_LIMITED);
    for (const id of served) assert.equal(byId.get(id)!.infer_response!.outputs.length, 2);
    assert.equal((await computed(url, 'stream')).inferences, served.length, 'the refused ones were never computed');
    // And the stream's requests drew on the client's bucket: it is empty for HTTP too.
    assert.equal((await infer(url, 'stream', 'grace')).status, 429);
  });

  it('never limits health, metadata, configuration and statistics calls, nor counts them', async () => {
    // The address bucket of this test's client is empty (see above); a named client's is full.
    const paths = ['/v2/health/live', '/v2/health/ready', '/v2', '/v2/models/metadata', '/v2/models/metadata/ready', '/v2/models/metadata/config', '/v2/models/metadata/stats', '/health'];
    for (let round = 0; round < 5; round++) {
      for (const path of paths) {
        assert.equal((await requestJson('GET', `${url}${path}`)).status, 200, path);
        assert.equal((await requestJson('GET', `${url}${path}`, { headers: { 'x-api-key': 'heidi' } })).status, 200, path);
      }
      await client.unary('ServerLive', {});
      await client.unary('ServerReady', {}, keyed('heidi'));
      await client.unary('ModelMetadata', { name: 'metadata' }, keyed('heidi'));
      await client.unary('ModelConfig', { name: 'metadata' });
      await client.unary('ModelStatistics', { name: 'metadata' }, keyed('heidi'));
    }
    assert.deepEqual(await statuses(url, 'metadata', BURST + 1, 'heidi'), [200, 200, 200, 429], "heidi's whole burst was left for inference");
  });

  it('counts the refusals by transport (throttled_requests_total)', async () => {
    const samples = parsePrometheusText(await (await fetch(server.server.metricsUrl!)).text());
    assert.ok(valueOf(samples, 'throttled_requests_total', { transport: 'http' }) >= 10);
    assert.ok(valueOf(samples, 'throttled_requests_total', { transport: 'grpc' }) >= 3);
  });
});

describe('without THROTTLE_RATE (the default, 0)', () => {
  let server: TestServer;
  let client: InferenceClient;
  before(async () => {
    server = await startTestServer(await makeRepository([{ name: 'open', onnx: classifierModel() }]), { THROTTLE_CLIENT_HEADER: 'x-api-key' });
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('throttles nothing and sends no X-RateLimit headers', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => infer(server.url, 'open', i % 2 ? 'ivan' : undefined)));
    assert.deepEqual(answers.filter((a) => a.status !== 200).map((a) => a.status), []);
    assert.ok(answers.every((a) => a.headers.get('x-ratelimit-limit') === null && a.headers.get('retry-after') === null));
    const grpc = await Promise.all(Array.from({ length: 20 }, () => client.infer(classify('open'), keyed('ivan'))));
    assert.equal(grpc.length, 20);
    const stream = client.stream({ ...keyed('ivan'), deadlineMs: 30_000 });
    for (let i = 0; i < 20; i++) stream.write(classify('open', `o${i}`));
    stream.end();
    const streamed = await stream.finished;
    assert.deepEqual(streamed.filter((a) => a.error_message).map((a) => a.error_message), []);
    assert.equal((await getJson(`${server.url}/v2/models/open/stats`)).status, 200);
    assert.equal((await computed(server.url, 'open')).inferences, 80);
  });
});

describe('a stream opened by a client already over its quota', () => {
  it('answers each of its requests with an error_message naming the rate limit, and the server serves on', async () => {
    // Its own process: were the refusal to escape, it would end the process that serves.
    const repository = await makeRepository([{ name: 'm', onnx: classifierModel() }]);
    const server = await spawnServer({ MODEL_REPOSITORY: repository, ...ENV });
    const client = new InferenceClient(server.grpcAddress);
    try {
      assert.ok(await server.untilReady(), server.stderr());
      assert.deepEqual(await statuses(server.url, 'm', BURST + 1, 'kim'), [200, 200, 200, 429]);
      const stream = client.stream({ ...keyed('kim'), deadlineMs: 30_000 });
      stream.write(classify('m', 'k1'));
      stream.write(classify('m', 'k2'));
      stream.end();
      const answers = await stream.finished;
      assert.deepEqual(answers.map((answer) => answer.infer_response?.id).sort(), ['k1', 'k2']);
      for (const answer of answers) assert.match(answer.error_message ?? '', RATE_LIMITED);
      assert.equal((await fetch(`${server.url}/v2/health/live`).catch(() => undefined))?.status, 200, `the server still serves: ${server.stderr()}`);
      assert.equal((await infer(server.url, 'm', 'lee')).status, 200);
    } finally {
      client.close();
      await server.stop();
      await rm(repository, { recursive: true, force: true });
    }
  });
});

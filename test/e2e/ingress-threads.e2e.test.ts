import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { identityModelOf } from '../support/identity-models.js';
import { InferenceClient, OWN_CONNECTION, Status, type ServiceError } from '../support/grpc-client.js';
import { parsePrometheusText, valueOf } from '../support/prometheus-text.js';
import { bearer, classifierAnswering, makeRepository, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * INGRESS_THREADS on the real app: three threads accept the HTTP and gRPC ports and decode infer
 * requests; the main thread (the schedulers' owner) no longer listens on either port, so every
 * request and call below went through an ingress thread. Answers stay row-exact under batching, admin changes are
 * seen by the very next request, metrics and rate limits count across the threads.
 */
const TOKEN = 'ingress-threads-test-token-0123456789';
const ROWS = 64;

/** A request on a connection of its own (so the kernel spreads them over the threads). */
function post(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { method: 'POST', agent: new Agent({ keepAlive: false }), headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString() || 'null'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

const rowOf = (i: number) => [i, i * 0.5, i + 1, i / 3];

describe('ingress threads (INGRESS_THREADS=3)', () => {
  let server: TestServer;
  before(async () => {
    const repository = await makeRepository([
      { name: 'identity', onnx: identityModelOf(['fp32']), config: { max_batch_size: 16, dynamic_batching: { max_queue_delay_microseconds: 2000 } } },
      { name: 'swapped', version: 1, onnx: classifierAnswering(0) },
      { name: 'swapped', version: 2, onnx: classifierAnswering(1) },
    ]);
    server = await startTestServer(repository, { INGRESS_THREADS: '3', ADMIN_TOKEN: TOKEN, THROTTLE_RATE: '0.001', THROTTLE_BURST: '5', THROTTLE_CLIENT_HEADER: 'x-api-key' });
  });
  after(() => server.close());

  it('serves the ports from the ingress threads: the main thread listens only on its private sockets', () => {
    assert.equal(typeof server.server.app.getHttpServer().address(), 'string');
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(server.server.grpcAddress, /^127\.0\.0\.1:\d+$/);
  });

  it('answers gRPC ModelInfer row-exact, decoded on the threads, with the version in the initial metadata', async () => {
    const clients = Array.from({ length: 8 }, () => new InferenceClient(server.server.grpcAddress, OWN_CONNECTION));
    try {
      const answers = await Promise.all(
        Array.from({ length: 32 }, (_, i) =>
          clients[i % clients.length]!.inferWithMetadata(
            { model_name: 'identity', id: `g${i}`, inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: rowOf(i) } }] },
            { metadata: { 'x-api-key': `grpc-client-${i}` } },
          ),
        ),
      );
      for (const [i, { response, metadata }] of answers.entries()) {
        assert.equal(response.id, `g${i}`);
        const raw = response.raw_output_contents![0]!;
        assert.deepEqual(Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))), Array.from(Float32Array.from(rowOf(i))));
        assert.deepEqual(metadata['x-model-version'], ['1']);
      }
    } finally {
      for (const client of clients) client.close();
    }
  });

  it('forwards every other gRPC method to the main thread: metadata, and a ModelStreamInfer stream both ways', async () => {
    const client = new InferenceClient(server.server.grpcAddress, OWN_CONNECTION);
    try {
      const metadata = await client.unary('ModelMetadata', { name: 'identity' });
      assert.equal(metadata.name, 'identity');
      const stream = client.stream({ metadata: { 'x-api-key': 'streaming-client' } });
      for (let i = 0; i < 3; i++) stream.write({ model_name: 'identity', id: `s${i}`, inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: rowOf(i) } }] });
      stream.end();
      const streamed = await stream.finished;
      assert.deepEqual(streamed.map((answer) => answer.infer_response!.id).sort(), ['s0', 's1', 's2']);
      for (const answer of streamed) assert.equal(answer.error_message, '');
      await assert.rejects(client.unary('ModelMetadata', { name: 'nope' }), (error: ServiceError) => error.code === Status.NOT_FOUND && /nope/.test(error.details));
    } finally {
      client.close();
    }
  });

  it('answers every row exactly as sent, batched with others, over many connections', async () => {
    const answers = await Promise.all(
      Array.from({ length: ROWS }, (_, i) =>
        post(server.url, '/v2/models/identity/infer', { id: `r${i}`, inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 4], data: rowOf(i) }] }, { 'x-api-key': `client-${i}` }),
      ),
    );
    for (const [i, answer] of answers.entries()) {
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.id, `r${i}`);
      assert.deepEqual(answer.body.outputs[0].data, Array.from(Float32Array.from(rowOf(i))));
    }
    assert.ok(answers.some((answer) => answer.body.parameters.batch_size > 1), 'some requests were batched together');
  });

  it('sees each admin change (made through a thread, on the main thread) before its next request', async () => {
    for (const version of [2, 1, 2]) {
      const swap = await requestJson('PUT', `${server.url}/admin/models/swapped/default-version`, { headers: bearer(TOKEN), body: { version: String(version) } });
      assert.equal(swap.status, 200, JSON.stringify(swap.body));
      const answer = await post(server.url, '/v2/models/swapped/infer', { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] }, { 'x-api-key': `swap-${version}-${Math.random()}` });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.model_version, String(version));
      assert.equal(answer.headers['x-model-version'], String(version));
    }
  });

  it('holds one rate limit per client across the threads: exactly the burst passes, the rest is 429 with Retry-After', async () => {
    const body = { inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 4], data: rowOf(1) }] };
    const answers = await Promise.all(Array.from({ length: 12 }, () => post(server.url, '/v2/models/identity/infer', body, { 'x-api-key': 'one-client' })));
    const statuses = answers.map((answer) => answer.status).sort();
    assert.deepEqual(statuses, [...Array(5).fill(200), ...Array(7).fill(429)]);
    const passed = answers.filter((answer) => answer.status === 200);
    assert.deepEqual(passed.map((answer) => Number(answer.headers['x-ratelimit-remaining'])).sort(), [0, 1, 2, 3, 4]);
    for (const refused of answers.filter((answer) => answer.status === 429)) {
      assert.ok(Number(refused.headers['retry-after']) > 0);
      assert.match(refused.body.error, /rate limit/);
    }
    // The same client over gRPC: its bucket is the same one, empty.
    const client = new InferenceClient(server.server.grpcAddress, OWN_CONNECTION);
    try {
      await assert.rejects(
        client.infer({ model_name: 'identity', inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: rowOf(1) } }] }, { metadata: { 'x-api-key': 'one-client' } }),
        (error: ServiceError) => error.code === Status.RESOURCE_EXHAUSTED && Number(error.metadata.get('retry-after')[0]) > 0,
      );
    } finally {
      client.close();
    }
  });

  it('counts what the threads answered and refused in the main thread metrics, up to the scrape', async () => {
    const before = await scrape(server.server.metricsUrl!);
    const bad = await post(server.url, '/v2/models/identity/infer', { inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 4], data: [1, 2, 'x', 4] }] }, { 'x-api-key': 'bad-client' });
    assert.equal(bad.status, 400);
    const good = await post(server.url, '/v2/models/identity/infer', { inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 4], data: rowOf(2) }] }, { 'x-api-key': 'good-client' });
    assert.equal(good.status, 200);
    const after = await scrape(server.server.metricsUrl!);
    const answered = (samples: Samples, status: string) => valueOf(samples, 'http_requests_total', { method: 'POST', route: '/v2/models/:model/infer', status });
    assert.equal(answered(after, '200') - answered(before, '200'), 1);
    assert.equal(answered(after, '400') - answered(before, '400'), 1);
    const invalid = (samples: Samples) => valueOf(samples, 'inference_request_failure_total', { model: 'identity', reason: 'invalid', version: '_unknown' });
    assert.equal(invalid(after) - invalid(before), 1, 'the refusal decoded on a thread counts as an invalid request');
  });
});

type Samples = ReturnType<typeof parsePrometheusText>;

async function scrape(url: string): Promise<Samples> {
  return parsePrometheusText(await (await fetch(url)).text());
}

describe('ingress threads share the connection caps (INGRESS_THREADS=3, HTTP_MAX_CONNECTIONS=4)', () => {
  let server: TestServer;
  const sockets: Socket[] = [];
  before(async () => {
    const repository = await makeRepository([{ name: 'identity', onnx: identityModelOf(['fp32']) }]);
    server = await startTestServer(repository, { INGRESS_THREADS: '3', HTTP_MAX_CONNECTIONS: '4', HTTP_HEADERS_TIMEOUT_MS: '60000', HTTP_REQUEST_TIMEOUT_MS: '60000' });
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await server.close();
  });

  it('holds 4 idle connections in all, whichever thread accepted them, closes the rest at once, and takes a new one when one goes', { timeout: 20_000 }, async () => {
    const port = Number(new URL(server.url).port);
    let closed = 0;
    const allClosed = new Promise<void>((resolve) => {
      for (let i = 0; i < 12; i++) {
        const socket = connect(port, '127.0.0.1');
        sockets.push(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          closed++;
          if (closed === 8) resolve();
        });
      }
    });
    await allClosed;
    const held = sockets.filter((socket) => !socket.destroyed);
    assert.equal(held.length, 4, 'the cap holds across the threads');
    // A held connection still serves.
    held[0]!.write('GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n');
    const [answer] = (await once(held[0]!, 'data')) as [Buffer];
    assert.match(answer.toString(), /^HTTP\/1\.1 200/);
    // One goes: a new connection is taken in its place.
    held[1]!.destroy();
    await once(held[1]!, 'close');
    await waitFor(async () => (await fetch(`${server.url}/v2/health/live`).then((r) => r.status, () => 0)) === 200);
  });
});

/** Polls until `check` holds (a freed slot is counted when the server sees the close, a moment after the client's). */
async function waitFor(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
}

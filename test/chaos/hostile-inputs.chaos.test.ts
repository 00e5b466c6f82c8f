import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient, outputOf, rawOf, Status, type ModelInferRequest, type ModelInferResponse } from '../support/grpc-client.js';
import { identityModelOf } from '../support/identity-models.js';
import { closedLoop, grpcInfer, httpPost, loadFigures, report, scrape, succeeded, tally, type Answer } from '../support/load.js';
import { valueOf } from '../support/prometheus-text.js';
import { grpcFrame, MODEL_INFER_PATH, rawGrpcCall, serializeModelInferRequest } from '../support/raw-grpc.js';
import { getJson, makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 7: thousands of requests from concurrent clients, every other one hostile (bad JSON,
 * wrong shapes and datatypes, huge dimensions, NUL strings, bodies over MAX_REQUEST_BYTES, unknown
 * models, garbage protobuf...). Each hostile request gets its client-error status, every good one
 * its right answer, nothing hostile reaches the model, and the process stays up and bounded.
 */
const MAX_REQUEST_BYTES = 64 * 1024;
const ROW = [6.7, 3.0, 5.2, 2.3]; // the classifier answers label 2
const CLIENTS = 8;
/** Requests before RSS is measured: the heap, the runtime's arenas and the connections reach their working size. */
const WARM_UP = 1000;
const REQUESTS = 3000;
const RSS_GROWTH_BOUND_MB = 150;

let server: TestServer;
let grpc: InferenceClient;
let bigGrpc: InferenceClient;

const classifierInput = (overrides: object = {}) => ({ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW, ...overrides });
const grpcClassify = (overrides: Partial<ModelInferRequest['inputs'][number]> = {}, request: Partial<ModelInferRequest> = {}): ModelInferRequest => ({
  model_name: 'classifier',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW }, ...overrides }],
  ...request,
});
const infer = (path: string, body: string | Uint8Array, headers?: Record<string, string>) => httpPost(`${server.url}/v2/models/${path}/infer`, body, headers);
const json = (value: unknown) => JSON.stringify(value);

async function grpcRaw(body: Buffer): Promise<Answer> {
  const { code, details } = await rawGrpcCall(server.server.grpcAddress, MODEL_INFER_PATH, body);
  return { transport: 'grpc', status: Status[code] ?? String(code), message: details };
}

interface Hostile {
  readonly name: string;
  readonly status: string;
  send(): Promise<Answer>;
}

const HOSTILE: Hostile[] = [
  { name: 'bad JSON', status: '400', send: () => infer('classifier', '{"inputs": [{"name": "input",') },
  { name: 'JSON that is not an object', status: '400', send: () => infer('classifier', '[1, 2, 3]') },
  { name: 'bytes that are not UTF-8', status: '400', send: () => infer('classifier', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])) },
  { name: 'JSON nested 2000 deep', status: '400', send: () => infer('classifier', `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":${'['.repeat(2000)}${']'.repeat(2000)}}]}`) },
  { name: 'wrong shape', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput({ shape: [1, 3], data: [1, 2, 3] })] })) },
  { name: 'wrong datatype', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput({ datatype: 'INT32', data: [1, 2, 3, 4] })] })) },
  { name: 'huge dims', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput({ shape: [2 ** 31, 2 ** 31], data: [1] })] })) },
  { name: 'a negative dim', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput({ shape: [-1, 4] })] })) },
  { name: 'elements not matching the shape', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput({ shape: [2, 4] })] })) },
  { name: 'a batch over max_batch_size', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput({ shape: [9, 4], data: new Array(36).fill(1) })] })) },
  { name: 'a string for FP32', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput({ data: [1, 2, 'x', 4] })] })) },
  { name: 'a NUL in a BYTES element', status: '400', send: () => infer('bytes', json({ inputs: [{ name: 'in_bytes', shape: [1, 2], datatype: 'BYTES', data: ['ok', 'a\u0000b'] }] })) },
  { name: 'a body over MAX_REQUEST_BYTES', status: '413', send: () => infer('classifier', json({ inputs: [classifierInput({ data: new Array(MAX_REQUEST_BYTES / 2).fill(1) })] })) },
  { name: 'an unknown model', status: '404', send: () => infer('no_such_model', json({ inputs: [classifierInput()] })) },
  { name: 'an unknown version', status: '404', send: () => infer('classifier/versions/9', json({ inputs: [classifierInput()] })) },
  { name: 'an unknown output', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput()], outputs: [{ name: 'logits' }] })) },
  { name: 'x-timeout-ms not a number', status: '400', send: () => infer('classifier', json({ inputs: [classifierInput()] }), { 'x-timeout-ms': 'soon' }) },
  { name: 'gRPC: bytes that are not protobuf', status: 'INVALID_ARGUMENT', send: () => grpcRaw(grpcFrame(Buffer.from([0x3a, 0x10, 0x01, 0x02]))) },
  { name: 'gRPC: a length prefix over the receive limit', status: 'RESOURCE_EXHAUSTED', send: () => grpcRaw(grpcFrame(serializeModelInferRequest(grpcClassify()), { declaredLength: MAX_REQUEST_BYTES + 1 })) },
  { name: 'gRPC: a message over MAX_REQUEST_BYTES', status: 'RESOURCE_EXHAUSTED', send: () => grpcInfer(bigGrpc, grpcClassify({ shape: [1, MAX_REQUEST_BYTES / 4], contents: undefined }, { raw_input_contents: [Buffer.alloc(MAX_REQUEST_BYTES)] })) },
  { name: 'gRPC: an unknown model', status: 'NOT_FOUND', send: () => grpcInfer(grpc, grpcClassify({}, { model_name: 'no_such_model' })) },
  { name: 'gRPC: wrong shape', status: 'INVALID_ARGUMENT', send: () => grpcInfer(grpc, grpcClassify({ shape: [1, 3], contents: { fp32_contents: [1, 2, 3] } })) },
  { name: 'gRPC: huge dims', status: 'INVALID_ARGUMENT', send: () => grpcInfer(grpc, grpcClassify({ shape: [2 ** 31, 2 ** 31] })) },
  { name: 'gRPC: raw contents of the wrong size', status: 'INVALID_ARGUMENT', send: () => grpcInfer(grpc, grpcClassify({ contents: undefined }, { raw_input_contents: [rawOf(Float32Array.of(1, 2, 3))] })) },
  { name: 'gRPC: contents in the wrong field', status: 'INVALID_ARGUMENT', send: () => grpcInfer(grpc, grpcClassify({ contents: { int_contents: [1, 2, 3, 4] } })) },
  { name: 'gRPC: a NUL in a BYTES element', status: 'INVALID_ARGUMENT', send: () => grpcInfer(grpc, { model_name: 'bytes', inputs: [{ name: 'in_bytes', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from('a\u0000b')] } }] }) },
];

/** A request the server must answer right: the classifier's label 2, over HTTP or gRPC. */
async function good(viaGrpc: boolean): Promise<Answer & { right: boolean }> {
  const answer = viaGrpc ? await grpcInfer(grpc, grpcClassify()) : await infer('classifier', json({ inputs: [classifierInput()] }));
  const label = !succeeded(answer) ? undefined : viaGrpc ? Number(outputOf(answer.body as ModelInferResponse, 'label').values[0]) : answer.body.outputs[1].data[0];
  return { ...answer, right: label === 2 };
}

before(async () => {
  const repository = await makeRepository([
    { name: 'classifier', onnx: classifierModel() },
    { name: 'bytes', onnx: identityModelOf(['BYTES']) },
  ]);
  server = await startTestServer(repository, { MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) });
  grpc = new InferenceClient(server.server.grpcAddress);
  bigGrpc = new InferenceClient(server.server.grpcAddress, { 'grpc.max_send_message_length': -1 });
});

after(async () => {
  grpc?.close();
  bigGrpc?.close();
  await server?.close();
});

test(`${REQUESTS} requests, half hostile (${HOSTILE.length} kinds, HTTP and gRPC): every hostile one a 4xx/client status, every good one right, no crash, RSS growth < ${RSS_GROWTH_BOUND_MB} MB, metrics scrape`, { timeout: 90_000 }, async (t) => {
  let next = 0;
  const run = (count: number) => {
    const load = closedLoop<Answer & { hostile?: string; expected?: string; right?: boolean }>({
      clients: CLIENTS,
      send: async (client, sequence) => {
        if ((client + sequence) % 2 === 0) return good(sequence % 4 < 2);
        const hostile = HOSTILE[next++ % HOSTILE.length]!;
        return { ...(await hostile.send()), hostile: hostile.name, expected: hostile.status };
      },
    });
    return load.further(count).then(() => load.stop());
  };

  await run(WARM_UP);
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const outcomes = await run(REQUESTS);
  const elapsedMs = performance.now() - started;
  const rssAfter = process.memoryUsage().rss;
  const heapAfter = process.memoryUsage().heapUsed;

  const goodOnes = outcomes.filter((o) => o.hostile === undefined);
  const hostileOnes = outcomes.filter((o) => o.hostile !== undefined);
  const wrong = hostileOnes.filter((o) => o.status !== o.expected);
  const live = await fetch(`${server.url}/v2/health/live`);
  const ready = await fetch(`${server.url}/v2/health/ready`);
  const health = await getJson(`${server.url}/health`);
  const metrics = await scrape(server.server.metricsUrl!);
  const stats = await modelStatistics(server.url, 'classifier');
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
  report(t, {
    ...loadFigures('good', goodOnes),
    ...loadFigures('hostile', hostileOnes),
    duration: `${elapsedMs.toFixed(0)} ms for ${outcomes.length} requests after a warm-up of ${WARM_UP}`,
    'hostile answered as expected': `${hostileOnes.length - wrong.length} of ${hostileOnes.length}, ${HOSTILE.length} kinds`,
    rss: `${mb(rssBefore)} -> ${mb(rssAfter)} (${mb(rssAfter - rssBefore)})`,
    'heap used': `${mb(heapBefore)} -> ${mb(heapAfter)}`,
    after: `live ${live.status}, ready ${ready.status}, /health ${health.status}, metrics ${metrics.length} samples, worker exits ${valueOf(metrics, 'inference_worker_exits_total', { model: 'classifier', version: '1' })}`,
    'classifier stats': `inference_count ${stats.inference_count}, execution_count ${stats.execution_count}, fail ${stats.inference_stats.fail.count}`,
    'invalid (metrics)': `${valueOf(metrics, 'inference_request_failure_total', { model: 'classifier', version: '1', reason: 'invalid' })} on the classifier; ${tally(hostileOnes.map((o) => o.status))}`,
  });

  assert.deepEqual(
    [...new Set(wrong.map((o) => `${o.hostile}: expected ${o.expected}, got ${o.transport} ${o.status} "${o.message?.slice(0, 120)}"`))],
    [],
    `${wrong.length} hostile requests not answered with their client error`,
  );
  for (const o of hostileOnes) assert.ok(/^4\d\d$/.test(o.status) || ['INVALID_ARGUMENT', 'NOT_FOUND', 'RESOURCE_EXHAUSTED'].includes(o.status), `${o.hostile}: ${o.status}`);
  assert.deepEqual(goodOnes.filter((o) => !succeeded(o) || !o.right).slice(0, 5).map((o) => `${o.transport} ${o.status} ${o.message}`), [], 'every good request was answered right');
  assert.ok(goodOnes.length >= REQUESTS * 0.4 && hostileOnes.length >= REQUESTS * 0.4, 'half and half');
  assert.equal(live.status, 200);
  assert.equal(ready.status, 200);
  assert.equal(health.status, 200);
  assert.equal(valueOf(metrics, 'inference_worker_exits_total', { model: 'classifier', version: '1' }), 0, 'no worker died');
  // Nothing hostile was computed: the classifier's rows are the good requests' (warm-up included).
  assert.equal(Number(stats.inference_stats.fail.count), 0);
  assert.ok(rssAfter - rssBefore < RSS_GROWTH_BOUND_MB * 2 ** 20, `RSS grew by ${mb(rssAfter - rssBefore)}`);
});

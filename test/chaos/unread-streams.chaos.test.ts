import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MULTI_IO_CONFIG, classifierModel, multiIoModel } from '../../scripts/build-models.js';
import { InferenceClient, type ModelInferRequest } from '../support/grpc-client.js';
import { eventually, grpcInfer, httpPost, loadFigures, pacedLoad, report, scrape, succeeded } from '../support/load.js';
import { valueOf } from '../support/prometheus-text.js';
import { openUnreadStream, type UnreadStream } from '../support/raw-grpc.js';
import { makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Fault suite 8: ModelStreamInfer clients that write requests with large answers as fast as the
 * server takes them and never read (issue 15: RSS 1.4 -> 2.6 GB in 20 s), while compliant clients
 * load another model over HTTP and gRPC. Each stream stops being read once it holds
 * GRPC_STREAM_MAX_BUFFERED_BYTES; the compliant clients are served; once the streams read, every
 * request they sent is answered.
 */
const LIMIT = 2 * 1024 * 1024;
const TEXT_BYTES = 160 * 1024;
const STREAMS = 4;
const REQUESTS_PER_STREAM = 400;
const RATE = 40;
const DURATION_MS = 3000;
const ROW = [6.7, 3.0, 5.2, 2.3];
const HTTP_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const GRPC_REQUEST = { model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] };

let server: TestServer;
let grpc: InferenceClient;
const streams: UnreadStream[] = [];

before(async () => {
  const repository = await makeRepository([
    { name: 'multi_io', onnx: multiIoModel(), config: MULTI_IO_CONFIG },
    { name: 'classifier', onnx: classifierModel() },
  ]);
  server = await startTestServer(repository, { GRPC_STREAM_MAX_BUFFERED_BYTES: String(LIMIT) });
  grpc = new InferenceClient(server.server.grpcAddress);
});

after(async () => {
  for (const stream of streams) stream.close();
  grpc?.close();
  await server?.close();
});

function request(stream: number, id: number): ModelInferRequest {
  return {
    model_name: 'multi_io',
    id: `${stream}-${id}`,
    inputs: [
      { name: 'features', datatype: 'FP32', shape: [1, 3], contents: { fp32_contents: [1, 2, 3] } },
      { name: 'counts', datatype: 'INT64', shape: [1, 2], contents: { int64_contents: [1, 2] } },
      { name: 'mask', datatype: 'BOOL', shape: [1, 3], contents: { bool_contents: [true, false, true] } },
      { name: 'text', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.alloc(TEXT_BYTES, 0x61 + (id % 26))] } },
    ],
  };
}

test(`${STREAMS} streams writing ${REQUESTS_PER_STREAM} requests with ${TEXT_BYTES / 1024} KB answers each and reading none, beside compliant load: each holds about GRPC_STREAM_MAX_BUFFERED_BYTES (${LIMIT}), compliant >= 99.9% served, every stream answered in full once it reads`, { timeout: 120_000 }, async (t) => {
  const rssBefore = process.memoryUsage().rss;
  for (let s = 0; s < STREAMS; s++) streams.push(openUnreadStream(server.server.grpcAddress, Array.from({ length: REQUESTS_PER_STREAM }, (_, id) => request(s, id))));
  const compliant = await pacedLoad({
    ratePerSecond: RATE,
    durationMs: DURATION_MS,
    send: (sequence) => (sequence % 2 === 0 ? httpPost(`${server.url}/v2/models/classifier/infer`, HTTP_BODY) : grpcInfer(grpc, GRPC_REQUEST)),
  });
  // Every stream has filled its buffer (or the server computed on past any bound, before the fix).
  const total = STREAMS * REQUESTS_PER_STREAM;
  const held = await eventually('every stream fills its buffer', async () => {
    const samples = await scrape(server.server.metricsUrl!);
    const computed = Number((await modelStatistics(server.url, 'multi_io')).inference_stats.success.count);
    const buffered = valueOf(samples, 'grpc_stream_buffered_bytes');
    return computed >= total / 2 || buffered >= STREAMS * (LIMIT - 2 * TEXT_BYTES) ? { computed, buffered, pauses: valueOf(samples, 'grpc_stream_read_pauses_total') } : undefined;
  });
  const rssHeld = process.memoryUsage().rss;
  report(t, {
    ...loadFigures('compliant', compliant),
    'unread streams': `${held.computed} of ${total} requests computed, ${held.buffered} bytes held (${(held.buffered / STREAMS / 1024 / 1024).toFixed(2)} MiB a stream, limit ${LIMIT / 1024 / 1024} MiB), ${held.pauses} pauses`,
    'RSS of the test process (the server, and the clients\' requests built up front)': `${(rssBefore / 2 ** 20).toFixed(0)} -> ${(rssHeld / 2 ** 20).toFixed(0)} MiB`,
  });
  const served = compliant.filter(succeeded).length;
  assert.ok(served >= compliant.length * 0.999, `compliant: ${served} of ${compliant.length} served: ${JSON.stringify(compliant.find((o) => !succeeded(o)))}`);
  assert.ok(held.computed < total / 2, `${held.computed} of ${total} requests computed for clients that read nothing`);
  assert.ok(held.buffered <= STREAMS * (LIMIT + 2 * TEXT_BYTES + 4096), `the streams hold ${held.buffered} bytes`);

  const results = await Promise.all(streams.map((stream) => stream.readAll()));
  for (const [s, { code, answers }] of results.entries()) {
    assert.equal(code, '0', `stream ${s}`);
    assert.equal(answers.length, REQUESTS_PER_STREAM, `stream ${s}`);
    assert.deepEqual(answers.filter((a) => a.error_message).map((a) => a.error_message), []);
  }
  const drained = await eventually('the streams\' bytes leave the count', async () => {
    const buffered = valueOf(await scrape(server.server.metricsUrl!), 'grpc_stream_buffered_bytes');
    return buffered === 0 ? buffered : undefined;
  });
  assert.equal(drained, 0);
});

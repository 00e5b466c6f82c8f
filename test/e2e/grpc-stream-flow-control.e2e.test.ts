import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MULTI_IO_CONFIG, multiIoModel } from '../../scripts/build-models.js';
import type { ModelInferRequest } from '../support/grpc-client.js';
import { eventually, scrape } from '../support/load.js';
import { valueOf } from '../support/prometheus-text.js';
import { openUnreadStream } from '../support/raw-grpc.js';
import { makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Issue 15, item 1: a ModelStreamInfer client that writes and never reads its answers. Before,
 * reading paused only at 256 requests in flight, which fast requests never reach: every answer
 * piled up in the server's memory (RSS 1.4 -> 2.6 GB in 20 s). Now the stream stops reading once
 * it holds GRPC_STREAM_MAX_BUFFERED_BYTES, and resumes as the client reads.
 */
const LIMIT = 1024 * 1024;
const TEXT_BYTES = 100 * 1024;
const REQUESTS = 300;
/** Answers the client's HTTP/2 windows take in before the server's writes stop (64 KiB each: generous). */
const CLIENT_ABSORBS = 8;
const ANSWERS_HELD = Math.ceil(LIMIT / TEXT_BYTES) + 2;

let server: TestServer;

before(async () => {
  const repository = await makeRepository([{ name: 'multi_io', onnx: multiIoModel(), config: MULTI_IO_CONFIG }]);
  server = await startTestServer(repository, { GRPC_STREAM_MAX_BUFFERED_BYTES: String(LIMIT) });
});

after(async () => {
  await server?.close();
});

function request(id: number): ModelInferRequest {
  return {
    model_name: 'multi_io',
    id: String(id),
    inputs: [
      { name: 'features', datatype: 'FP32', shape: [1, 3], contents: { fp32_contents: [1, 2, 3] } },
      { name: 'counts', datatype: 'INT64', shape: [1, 2], contents: { int64_contents: [1, 2] } },
      { name: 'mask', datatype: 'BOOL', shape: [1, 3], contents: { bool_contents: [true, false, true] } },
      { name: 'text', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.alloc(TEXT_BYTES, 0x61 + (id % 26))] } },
    ],
  };
}

async function figures() {
  const samples = await scrape(server.server.metricsUrl!);
  const stats = await modelStatistics(server.url, 'multi_io');
  return {
    computed: Number(stats.inference_stats.success.count),
    buffered: valueOf(samples, 'grpc_stream_buffered_bytes'),
    pauses: valueOf(samples, 'grpc_stream_read_pauses_total'),
  };
}

test(`a stream client writing ${REQUESTS} requests with ~100 KB answers and reading none: the server holds about GRPC_STREAM_MAX_BUFFERED_BYTES (${LIMIT}), not every answer; all are answered once it reads`, { timeout: 60_000 }, async (t) => {
  const requests = Array.from({ length: REQUESTS }, (_, id) => request(id));
  const stream = openUnreadStream(server.server.grpcAddress, requests);
  t.after(() => stream.close());

  // Either the stream fills its bytes and stops (the fix), or the server computes on past any bound (before it).
  const bound = ANSWERS_HELD + CLIENT_ABSORBS;
  const filled = await eventually('the stream fills its buffer or computes past the bound', async () => {
    const now = await figures();
    return now.computed > bound || (now.pauses >= 1 && now.buffered >= LIMIT - 2 * TEXT_BYTES) ? now : undefined;
  });
  t.diagnostic(`held: ${JSON.stringify(filled)}`);
  assert.ok(filled.computed <= bound, `the server computed ${filled.computed} of ${REQUESTS} answers nobody read (bound ${bound})`);
  assert.ok(filled.buffered <= LIMIT + 2 * TEXT_BYTES + 4096, `the stream holds ${filled.buffered} bytes, past GRPC_STREAM_MAX_BUFFERED_BYTES (${LIMIT})`);

  // The client reads: reading resumes, every request is answered, once, and the stream ends.
  const { code, answers, rest } = await stream.readAll();
  assert.equal(code, '0');
  assert.equal(rest, 0);
  assert.equal(answers.length, REQUESTS);
  assert.deepEqual(answers.filter((a) => a.error_message), []);
  assert.equal(new Set(answers.map((a) => a.infer_response!.id)).size, REQUESTS);
  const end = await eventually("the stream's bytes leave the count", async () => {
    const now = await figures();
    return now.buffered === 0 ? now : undefined;
  });
  assert.equal(end.computed, REQUESTS);
});

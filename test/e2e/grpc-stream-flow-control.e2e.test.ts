import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, constants } from 'node:http2';
import { after, before, test } from 'node:test';
import { MULTI_IO_CONFIG, multiIoModel } from '../../scripts/build-models.js';
import type { ModelInferRequest } from '../support/grpc-client.js';
import { eventually, scrape } from '../support/load.js';
import { valueOf } from '../support/prometheus-text.js';
import { MODEL_STREAM_INFER_PATH, deserializeModelStreamInferResponse, grpcFrame, serializeModelInferRequest, splitGrpcFrames } from '../support/raw-grpc.js';
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
  // Bare HTTP/2, as a client that stops reading its socket does (grpc-js clients read on into their own memory).
  const session = connect(`http://${server.server.grpcAddress}`);
  session.on('error', () => undefined);
  t.after(() => session.close());
  const stream = session.request({
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: MODEL_STREAM_INFER_PATH,
    [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    [constants.HTTP2_HEADER_TE]: 'trailers',
  });
  let status: string | undefined;
  stream.on('trailers', (trailers) => (status = String(trailers['grpc-status'])));
  stream.on('error', () => undefined);
  // Written as fast as the server takes them (past Node's session memory, Node itself would reset the stream).
  const written = (async () => {
    for (let id = 0; id < REQUESTS; id++) if (!stream.write(grpcFrame(serializeModelInferRequest(request(id))))) await once(stream, 'drain');
    stream.end();
  })();

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
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await written;
  await once(stream, 'close');
  const { messages, rest } = splitGrpcFrames(Buffer.concat(chunks));
  const answers = messages.map(deserializeModelStreamInferResponse);
  assert.equal(status, '0');
  assert.equal(rest.length, 0);
  assert.equal(answers.length, REQUESTS);
  assert.deepEqual(answers.filter((a) => a.error_message), []);
  assert.equal(new Set(answers.map((a) => a.infer_response!.id)).size, REQUESTS);
  const end = await eventually("the stream's bytes leave the count", async () => {
    const now = await figures();
    return now.buffered === 0 ? now : undefined;
  });
  assert.equal(end.computed, REQUESTS);
});

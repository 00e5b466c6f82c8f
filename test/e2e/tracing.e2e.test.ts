import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient } from '../support/grpc-client.js';
import { makeRepository, startTestServer, type TestServer } from '../support/test-server.js';
import { spansUntil } from '../support/spans.js';

/**
 * Traces through the batcher and the worker threads, read from an in-memory exporter: each request
 * continues the trace of its W3C traceparent (HTTP header or gRPC metadata) with a server span; its
 * wait in the queue and its response are children of it; the batch that served several requests is
 * a span of its own trace, linked to each of their request spans; the computation in the worker is
 * a child of the batch span, timed by the worker.
 */
const SAMPLE = [5.1, 3.5, 1.4, 0.2];
const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: SAMPLE }] });

function traceparent(traceId: string, spanId: string): string {
  return `00-${traceId}-${spanId}-01`;
}

describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  let server: TestServer;
  let client: InferenceClient;
  before(async () => {
    // A window of 200 ms: the two requests sent together are one batch.
    const config = { max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 200_000, preferred_batch_size: [2] } };
    server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel(), config }]), {}, { spanExporter: exporter });
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('links the batch span to both requests it served; queue and response are children of each request, compute of the batch', async () => {
    exporter.reset();
    const traces = [
      { traceId: '0af7651916cd43dd8448eb211c80319c', parentId: 'b7ad6b7169203331' },
      { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7' },
    ];
    const answers = await Promise.all(
      traces.map(({ traceId, parentId }) =>
        fetch(`${server.url}/v2/models/classifier/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', traceparent: traceparent(traceId, parentId) },
          body,
        }),
      ),
    );
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.equal(((await answer.json()) as { parameters: { batch_size: number } }).parameters.batch_size, 2);
    }
    const spans = await spansUntil(exporter, (all) => all.filter((s) => s.name === 'POST /v2/models/:model/infer').length === 2 && all.some((s) => s.name === 'compute'));
    const requests = traces.map(({ traceId, parentId }): ReadableSpan => {
      const span = spans.find((s) => s.name === 'POST /v2/models/:model/infer' && s.spanContext().traceId === traceId);
      assert.ok(span, `a server span continues trace ${traceId}`);
      assert.equal(span.kind, SpanKind.SERVER);
      assert.equal(span.parentSpanContext?.spanId, parentId, 'its parent is the caller span of the traceparent');
      assert.equal(span.attributes['http.route'], '/v2/models/:model/infer');
      assert.equal(span.attributes['http.request.method'], 'POST');
      assert.equal(span.attributes['http.response.status_code'], 200);
      assert.equal(span.attributes['inference.model'], 'classifier');
      assert.equal(span.attributes['inference.model_version'], '1');
      for (const child of ['queue', 'response']) {
        const requestSpanId: string = span.spanContext().spanId;
        const found: ReadableSpan | undefined = spans.find((s) => s.name === child && s.parentSpanContext?.spanId === requestSpanId);
        assert.ok(found, `'${child}' is a child of the request span of trace ${traceId}`);
        assert.equal(found.spanContext().traceId, traceId);
      }
      return span;
    });
    const batches = spans.filter((s) => s.name === 'batch');
    assert.equal(batches.length, 1, 'one run served both');
    const [batch] = batches;
    assert.equal(batch.attributes['inference.batch_size'], 2);
    assert.equal(batch.parentSpanContext, undefined, 'the batch starts a trace of its own');
    assert.deepEqual(
      batch.links.map((link) => link.context.spanId).sort(),
      requests.map((span) => span.spanContext().spanId).sort(),
      'the batch links to both request spans',
    );
    const compute = spans.find((s) => s.name === 'compute');
    assert.ok(compute);
    assert.equal(compute.parentSpanContext?.spanId, batch.spanContext().spanId, 'the compute made in the worker is a child of the batch');
    assert.equal(compute.spanContext().traceId, batch.spanContext().traceId);
    assert.equal(compute.attributes['inference.execution_provider'], 'cpu');
  });

  it('continues a trace from gRPC metadata, with the RPC as the span', async () => {
    exporter.reset();
    const traceId = '11111111111111111111111111111111';
    await client.unary(
      'ModelInfer',
      { model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: SAMPLE } }] },
      { metadata: { traceparent: traceparent(traceId, '2222222222222222') } },
    );
    const spans = await spansUntil(exporter, (all) => all.some((s) => s.name === 'inference.GRPCInferenceService/ModelInfer'));
    const rpc = spans.find((s) => s.name === 'inference.GRPCInferenceService/ModelInfer')!;
    assert.equal(rpc.kind, SpanKind.SERVER);
    assert.equal(rpc.spanContext().traceId, traceId);
    assert.equal(rpc.parentSpanContext?.spanId, '2222222222222222');
    assert.equal(rpc.attributes['rpc.system'], 'grpc');
    assert.equal(rpc.attributes['rpc.method'], 'ModelInfer');
    assert.equal(rpc.attributes['rpc.grpc.status_code'], 0);
    assert.ok(spans.some((s) => s.name === 'queue' && s.parentSpanContext?.spanId === rpc.spanContext().spanId));
  });

  it('starts a new trace for a request without traceparent, and marks a failed request', async () => {
    exporter.reset();
    const response = await fetch(`${server.url}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs": []}' });
    assert.equal(response.status, 400);
    const spans = await spansUntil(exporter, (all) => all.some((s) => s.name === 'POST /v2/models/:model/infer'));
    const span = spans.find((s) => s.name === 'POST /v2/models/:model/infer')!;
    assert.equal(span.parentSpanContext, undefined);
    assert.equal(span.attributes['http.response.status_code'], 400);
  });

  it('records nothing for a request whose caller did not sample it (traceparent flags 00): no request, queue, response, batch or compute span', async () => {
    exporter.reset();
    const response = await fetch(`${server.url}/v2/models/classifier/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: '00-7a3c1d9e8f6b5a4c3d2e1f0a9b8c7d6e-1a2b3c4d5e6f7a8b-00' },
      body,
    });
    assert.equal(response.status, 200);
    await response.text();
    // A sampled request after it: once its spans are in, the unsampled one would have been too.
    await fetch(`${server.url}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.text());
    const spans = await spansUntil(exporter, (all) => all.some((s) => s.name === 'compute'));
    assert.equal(spans.filter((s) => s.name === 'POST /v2/models/:model/infer').length, 1, 'only the sampled request');
    assert.ok(spans.every((s) => s.spanContext().traceId !== '7a3c1d9e8f6b5a4c3d2e1f0a9b8c7d6e'));
    assert.equal(spans.filter((s) => s.name === 'queue').length, 1);
    assert.equal(spans.filter((s) => s.name === 'response').length, 1);
    for (const batch of spans.filter((s) => s.name === 'batch')) assert.ok(batch.links.length >= 1, 'a batch span links to a sampled request');
  });
});

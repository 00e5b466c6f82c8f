import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { classifierModel } from '../../scripts/build-models.js';
import { INGRESS_SAMPLED_HEADER } from '../../src/infra/tracing/ingress-sampling.js';
import { parsePrometheusText, valueOf } from '../support/prometheus-text.js';
import { spansUntil } from '../support/spans.js';
import { makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Tracing on, with an ingress thread: a request the sampler leaves out is served by the thread
 * (counted in http_ingress_thread_answers_total), one to be traced is forwarded to the main thread
 * and traced there as without threads, and no client can make the main thread sample a request by
 * sending the header a thread uses to hand over its draw.
 */
const INFER_SPAN = 'POST /v2/models/:model/infer';
const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] });
const traceparent = (traceId: string, flags: '00' | '01') => `00-${traceId}-b7ad6b7169203331-${flags}`;

async function startServer(exporter: InMemorySpanExporter, sampler: string): Promise<TestServer> {
  const previous = process.env.OTEL_TRACES_SAMPLER;
  process.env.OTEL_TRACES_SAMPLER = sampler; // read once, when the server's tracing is made
  try {
    const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel(), config: { max_batch_size: 8 } }]);
    return await startTestServer(repository, { INGRESS_THREADS: '1' }, { spanExporter: exporter });
  } finally {
    if (previous === undefined) delete process.env.OTEL_TRACES_SAMPLER;
    else process.env.OTEL_TRACES_SAMPLER = previous;
  }
}

async function infer(server: TestServer, headers: Record<string, string> = {}): Promise<number> {
  const response = await fetch(`${server.url}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  await response.arrayBuffer();
  return response.status;
}

/** The HTTP answers the ingress thread sent itself, on the infer route. */
async function threadAnswers(server: TestServer): Promise<number> {
  const text = await (await fetch(server.server.metricsUrl!)).text();
  return valueOf(parsePrometheusText(text), 'http_ingress_thread_answers_total', { route: '/v2/models/:model/infer' });
}

const traceIdsOf = (spans: readonly ReadableSpan[], name: string) =>
  spans
    .filter((s) => s.name === name)
    .map((s) => s.spanContext().traceId)
    .sort();

describe('tracing through an ingress thread', () => {
  describe('with the default sampler (parentbased_always_on)', () => {
    const exporter = new InMemorySpanExporter();
    let server: TestServer;
    before(async () => {
      server = await startServer(exporter, 'parentbased_always_on');
    });
    after(() => server.close());

    it('serves on the thread what its caller did not sample, and traces on the main thread what is sampled, new traces included', async () => {
      const before = await threadAnswers(server);
      const unsampled = ['11111111111111111111111111111111', '22222222222222222222222222222222', '33333333333333333333333333333333'];
      const sampled = ['44444444444444444444444444444444', '55555555555555555555555555555555'];
      const statuses = await Promise.all([
        ...unsampled.map((id) => infer(server, { traceparent: traceparent(id, '00') })),
        ...sampled.map((id) => infer(server, { traceparent: traceparent(id, '01') })),
        infer(server),
        infer(server),
      ]);
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200]);
      const spans = await spansUntil(exporter, (all) => all.filter((s) => s.name === INFER_SPAN).length >= 4);
      const traced = traceIdsOf(spans, INFER_SPAN);
      assert.equal(traced.length, 4, 'the two sampled requests and the two new traces');
      for (const id of sampled) assert.ok(traced.includes(id), `the sampled trace ${id} is continued`);
      for (const id of unsampled) assert.ok(!traced.includes(id), `nothing is recorded of the unsampled trace ${id}`);
      for (const span of spans.filter((s) => s.name === 'queue')) assert.ok(!unsampled.includes(span.spanContext().traceId));
      assert.equal((await threadAnswers(server)) - before, 3, 'the thread answered the three unsampled requests itself');
    });
  });

  describe('with a sampler that starts no trace (parentbased_always_off)', () => {
    const exporter = new InMemorySpanExporter();
    let server: TestServer;
    before(async () => {
      server = await startServer(exporter, 'parentbased_always_off');
    });
    after(() => server.close());

    it(`does not let a client force a sample with ${INGRESS_SAMPLED_HEADER}, on a request the thread forwards or serves`, async () => {
      const control = '66666666666666666666666666666666';
      // Metadata is always forwarded to the main thread: a caller's sampled trace is continued there.
      const answered = await fetch(`${server.url}/v2/models/classifier`, { headers: { traceparent: traceparent(control, '01') } });
      assert.equal(answered.status, 200);
      const spans = await spansUntil(exporter, (all) => all.some((s) => s.spanContext().traceId === control));
      assert.equal(spans.length, 1);

      const forged = await fetch(`${server.url}/v2/models/classifier`, { headers: { [INGRESS_SAMPLED_HEADER]: '1' } });
      assert.equal(forged.status, 200);
      const before = await threadAnswers(server);
      assert.equal(await infer(server, { [INGRESS_SAMPLED_HEADER]: '1' }), 200);
      assert.equal((await threadAnswers(server)) - before, 1, 'a new trace the sampler leaves out is served by the thread');
      assert.deepEqual(
        exporter.getFinishedSpans().map((s) => s.spanContext().traceId),
        [control],
        'the forged header made no span: the request span ends before its answer is sent',
      );
    });
  });
});

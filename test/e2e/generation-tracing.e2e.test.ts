import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { TINY_GPT_NAME } from '../../scripts/build-models.js';
import { generativeRepository } from '../support/generative-models.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { spansUntil } from '../support/spans.js';

describe('tracing a generation', () => {
  const exporter = new InMemorySpanExporter();
  let server: TestServer;
  before(async () => {
    server = await startTestServer(await generativeRepository(), {}, { spanExporter: exporter });
  });
  after(() => server.close());

  it('gives each sequence a span in its request trace, and each decode step a span linked to the sequences it served', async () => {
    const traceIds = ['0af7651916cd43dd8448eb211c80319c', '4bf92f3577b34da6a3ce929d0e0e4736'];
    await Promise.all(
      traceIds.map((traceId) =>
        fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-b7ad6b7169203331-01` },
          body: JSON.stringify({ text_input: 'hello', parameters: { max_tokens: 4, ignore_eos: true } }),
        }).then((r) => r.text()),
      ),
    );
    const spans = await spansUntil(exporter, (all) => all.filter((s) => s.name === 'generation.sequence').length === 2);
    const sequences = spans.filter((s) => s.name === 'generation.sequence');
    assert.deepEqual(sequences.map((s) => s.spanContext().traceId).sort(), [...traceIds].sort());
    for (const sequence of sequences) {
      assert.equal(sequence.attributes['inference.model'], TINY_GPT_NAME);
      const steps = spans.filter((s) => s.name === 'generation.step' && s.links.some((l) => l.context.spanId === sequence.spanContext().spanId));
      assert.ok(steps.length >= 4, `the sequence's steps are linked to it (${steps.length})`);
      assert.ok(steps.every((step) => !traceIds.includes(step.spanContext().traceId)), 'a step is a trace of its own');
    }
  });
});

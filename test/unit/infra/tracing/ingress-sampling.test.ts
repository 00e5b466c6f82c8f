import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace';
import { INGRESS_SAMPLED_ATTRIBUTE, IngressDecidedSampler, IngressSampling } from '../../../../src/infra/tracing/ingress-sampling.js';
import { samplerFromEnv } from '../../../../src/infra/tracing/sampler.js';

/** An ingress thread decides with the main thread's sampler settings what the main thread will trace. */
const headers = (traceparent?: string) => (name: string) => (name === 'traceparent' ? traceparent : undefined);
const parent = (traceId: string, flags: '00' | '01') => `00-${traceId}-b7ad6b7169203331-${flags}`;

describe('IngressSampling', () => {
  it('follows the caller: a sampled parent is forwarded, an unsampled one served (parent-based samplers)', () => {
    const sampling = new IngressSampling({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' });
    assert.equal(sampling.decide(headers(parent('0af7651916cd43dd8448eb211c80319c', '01'))), 'forward');
    assert.equal(sampling.decide(headers(parent('0af7651916cd43dd8448eb211c80319c', '00'))), 'serve');
    assert.equal(sampling.decide(headers()), 'serve', 'a ratio of 0 starts no trace');
  });

  it('hands over its draw for a new trace, which the main thread would otherwise draw again', () => {
    assert.equal(new IngressSampling({}).decide(headers()), 'forward sampled', 'parentbased_always_on');
    assert.equal(new IngressSampling({ OTEL_TRACES_SAMPLER: 'always_off' }).decide(headers(parent('0af7651916cd43dd8448eb211c80319c', '01'))), 'serve');
  });

  it("decides a parent's trace exactly as the main thread's sampler will (traceidratio: on the trace id)", () => {
    const settings = { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' };
    const sampling = new IngressSampling(settings);
    const main = samplerFromEnv(settings);
    const decisions = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const traceId = [1, 2, 3, 4].map((k) => ((i * 0x0f1e2d3c * k + 0x1234567 * k) >>> 0).toString(16).padStart(8, '0')).join('');
      const mainRecords = main.shouldSample(ROOT_CONTEXT, traceId, '', SpanKind.SERVER, {}, []).decision !== SamplingDecision.NOT_RECORD;
      const decided = sampling.decide(headers(parent(traceId, '00')));
      decisions.add(decided);
      assert.equal(decided, mainRecords ? 'forward' : 'serve', traceId);
    }
    assert.deepEqual([...decisions].sort(), ['forward', 'serve'], 'both decisions were met');
  });
});

describe('IngressDecidedSampler', () => {
  it("samples a request span marked with the thread's draw, and leaves everything else to the configured sampler", () => {
    const sampler = new IngressDecidedSampler(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }));
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    assert.equal(sampler.shouldSample(ROOT_CONTEXT, traceId, 'POST /v2/models/:model/infer', SpanKind.SERVER, { [INGRESS_SAMPLED_ATTRIBUTE]: true }, []).decision, SamplingDecision.RECORD_AND_SAMPLED);
    assert.equal(sampler.shouldSample(ROOT_CONTEXT, traceId, 'POST /v2/models/:model/infer', SpanKind.SERVER, {}, []).decision, SamplingDecision.NOT_RECORD);
  });
});

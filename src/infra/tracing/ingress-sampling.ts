import { randomBytes } from 'node:crypto';
import { SpanKind, trace, type Attributes, type Context, type Link } from '@opentelemetry/api';
import { SamplingDecision, type Sampler, type SamplingResult } from '@opentelemetry/sdk-trace';
import { samplerFromEnv, type SamplerSettings } from './sampler.js';
import { extractTraceContext, type HeaderGetter } from './trace-context.js';

/**
 * Says that an ingress thread sampled a request that starts a new trace (an HTTP header, gRPC
 * metadata), on what it forwards to the main thread only: a client's own is dropped by the thread,
 * and the main thread reads it only off its private socket.
 */
export const INGRESS_SAMPLED_HEADER = 'x-ingress-sampled';

/** The request span's attribute that carries an ingress thread's draw to the main thread's sampler. */
export const INGRESS_SAMPLED_ATTRIBUTE = 'onnx_serving.ingress_sampled';


/**
 * What an ingress thread does with an infer request when tracing is on, decided before it reads
 * the request, with the sampler the main thread uses (OTEL_TRACES_SAMPLER) on the same W3C
 * traceparent:
 * - 'serve': the main thread would record nothing of it: the thread serves it (an unsampled request
 *   is the common case at a production ratio);
 * - 'forward': it will be traced: forwarded whole, and the main thread traces it as without threads.
 *   A request with a parent is decided by its parent and trace id, as the main thread decides it
 *   again;
 * - 'forward sampled': a new trace the thread drew sampled. The main thread gives the trace its id,
 *   so its sampler would draw again (a ratio of a ratio): the thread's draw goes with the request
 *   (INGRESS_SAMPLED_HEADER) and the main thread's sampler takes it (IngressDecidedSampler).
 */
export class IngressSampling {
  private readonly sampler: Sampler;

  constructor(settings: SamplerSettings) {
    this.sampler = samplerFromEnv(settings);
  }

  decide(header: HeaderGetter): 'serve' | 'forward' | 'forward sampled' {
    const parent = extractTraceContext(header);
    const parentSpan = trace.getSpanContext(parent);
    const traceId = parentSpan?.traceId ?? randomBytes(16).toString('hex');
    const { decision } = this.sampler.shouldSample(parent, traceId, '', SpanKind.SERVER, {}, []);
    if (decision === SamplingDecision.NOT_RECORD) return 'serve';
    return parentSpan ? 'forward' : 'forward sampled';
  }
}

/** The main thread's sampler: an ingress thread's draw for a new trace stands; everything else is `inner`'s to decide. */
export class IngressDecidedSampler implements Sampler {
  constructor(private readonly inner: Sampler) {}

  shouldSample(context: Context, traceId: string, spanName: string, spanKind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    if (attributes[INGRESS_SAMPLED_ATTRIBUTE] === true) return { decision: SamplingDecision.RECORD_AND_SAMPLED };
    return this.inner.shouldSample(context, traceId, spanName, spanKind, attributes, links);
  }

  toString(): string {
    return `IngressDecided{${this.inner.toString()}}`;
  }
}

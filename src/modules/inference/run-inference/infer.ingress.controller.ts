import { Injectable } from '@nestjs/common';
import type { CancellationSignal } from '../../../domain/inference/dynamic-batch-scheduler.js';
import type { InferenceResponse } from '../../../domain/inference/inference-request.js';
import { headerLookup } from '../../../domain/inference/inference-use-case.port.js';
import { RequestCancellations } from '../../../domain/inference/request-cancellations.port.js';
import type { AnsweredRow, DeclaredRequest, ForwardedInfer, RateLimitState } from '../../../infra/ingress/ingress-messages.js';
import { IngressRequests } from '../../../infra/ingress/ingress-threads.js';
import { HttpMetrics } from '../../observability/metrics/http-metrics.js';
import { ClientQuota } from '../../throttling/client-quota.js';
import { RunInferenceHandler } from './run-inference.handler.js';
import { GenerateTextHandler } from '../generate-text/generate-text.handler.js';
import { RefusalBeforeReading } from './refusal-before-reading.js';

/**
 * The infer requests ingress threads decoded (INGRESS_THREADS), run on the main thread exactly as
 * the HTTP and gRPC controllers run theirs: the address ceiling and the client's rate limit (the
 * one bucket per client, as the guard takes it), the judgement against the version's signature
 * (counted as a refusal), then the handler (routing, limits, breaker, scheduler).
 */
@Injectable()
export class InferIngressController extends IngressRequests {
  constructor(
    private readonly handler: RunInferenceHandler,
    private readonly quota: ClientQuota,
    private readonly cancellations: RequestCancellations,
    private readonly httpMetrics: HttpMetrics,
    private readonly generation: GenerateTextHandler,
    readonly queueRefusals: RefusalBeforeReading,
  ) {
    super();
  }

  async infer({ transport, address, command }: ForwardedInfer, signal: CancellationSignal): Promise<{ response: InferenceResponse; rateLimit?: RateLimitState } | 'hand over'> {
    // ModelInfer on a generative model answers its whole text: the gRPC controller serves it (the call forwarded whole; its guard takes the token).
    if (transport === 'grpc' && this.generation.serves(command.modelName, command.version)) return 'hand over';
    await this.quota.admitAddress(address, transport);
    const rateLimit = await this.quota.admit(this.quota.clientOf({ header: headerLookup(command.headers), address }), transport);
    this.handler.judge(command.modelName, command.version, command.request.inputs, command.request.requestedOutputs);
    const cancellation = this.cancellations.register(signal);
    try {
      return { response: await this.handler.execute({ ...command, cancellation }), rateLimit };
    } finally {
      this.cancellations.release(cancellation);
    }
  }

  judge(model: string, declared: DeclaredRequest | undefined, error: Error | undefined, counted: boolean): Error | undefined {
    try {
      // A model named is judged first (a message that names none, as a malformed one, is refused as it is).
      if (model) this.handler.assertKnownModel(model);
    } catch (notFound) {
      this.handler.refused(model, undefined, notFound);
      return notFound as Error;
    }
    if (declared) {
      try {
        this.handler.judge(model, declared.version, declared.inputs, declared.requestedOutputs); // counts its refusal
      } catch (refusal) {
        return refusal as Error;
      }
    }
    if (error && counted) this.handler.refused(model, undefined, error);
    return error;
  }

  refusedBeforeReading(model: string, version: number | undefined, error: Error, count: number): void {
    for (let i = 0; i < count; i++) this.handler.refused(model, version, error);
  }

  answered(rows: readonly AnsweredRow[]): void {
    for (const [method, route, status, elapsedMs] of rows) this.httpMetrics.answeredOnIngressThread(method, route, status, elapsedMs);
  }
}

import { Injectable, Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { InferenceEngine } from '../../../domain/inference/inference-engine.port.js';
import {
  judgeInputHeaders,
  schedulingParametersOf,
  validateInferenceRequest,
  type InputHeader,
  type InferenceResponse,
} from '../../../domain/inference/inference-request.js';
import { headerLookup, InferenceUseCase, type RunInferenceCommand } from '../../../domain/inference/inference-use-case.port.js';
import { RequestCancellations } from '../../../domain/inference/request-cancellations.port.js';
import { SystemSharedMemory, type ReservedOutputs } from '../../../domain/shared-memory/system-shared-memory.js';
import { assertResponseFits } from '../../../domain/inference/response-limit.js';
import { checkClassifications, classifyOutputs } from '../../../domain/inference/classification.js';
import type { Tensor } from '../../../domain/inference/tensor.js';
import { GENERATION_PARAMETER_NAMES } from '../../../domain/generation/generation-parameters.js';
import { generativeInputHeaders } from '../../../domain/registry/generative-model.js';
import { servedSignature } from '../../../domain/registry/model-config.js';
import type { ModelVersion } from '../../../domain/registry/model-version.js';
import { outputDivergence } from '../../../domain/rollout/output-divergence.js';
import { TrafficRouter } from '../../../domain/rollout/traffic-router.port.js';
import { DomainError, errorKindOf } from '../../../domain/shared/domain-error.js';
import { AppConfig } from '../../../infra/config/app-config.js';
import { RequestTracer } from '../../../domain/shared/request-tracer.port.js';
import { InferenceMetrics } from '../../observability/metrics/inference-metrics.js';
import { ModelCatalog } from '../../../domain/registry/model-catalog.port.js';
import { CircuitBreakers } from '../circuit-breakers.js';
import { ConcurrencyLimits } from '../concurrency-limits.js';
import { ModelVersionSchedulers } from '../model-version-schedulers.js';



/**
 * Runs one inference request: picks the version (the one named, else the model's rollout's
 * choice, else the default), checks the request against its signature, then queues it in that
 * version's scheduler, which batches it with others, within the version's in-flight limit and
 * behind its circuit breaker. Outputs asked for as classifications are answered as their top-k
 * classes (for both transports, here). The response reports the queue and compute
 * time and the rows of the run that served it, in its `parameters`. A request the rollout routed
 * has its outcome counted for the rollout, and may be mirrored to a shadow version in the
 * background once its own answer is ready.
 */
@Injectable()
export class RunInferenceHandler extends InferenceUseCase {
  private readonly logger = new Logger('Shadow');

  constructor(
    private readonly registry: ModelCatalog,
    private readonly schedulers: ModelVersionSchedulers,
    private readonly engine: InferenceEngine,
    private readonly router: TrafficRouter,
    private readonly metrics: InferenceMetrics,
    private readonly tracing: RequestTracer,
    private readonly breakers: CircuitBreakers,
    private readonly limits: ConcurrencyLimits,
    private readonly config: AppConfig,
    private readonly cancellations: RequestCancellations,
    private readonly sharedMemory: SystemSharedMemory,
  ) {
    super();
  }

  /**
   * Counts each request in the metrics (success with its durations, or failure with its reason).
   * Outputs asked into shared memory have their slices checked and held before anything runs (a bad
   * region costs no computation), and are written before the request counts as answered.
   */
  async execute(command: RunInferenceCommand): Promise<InferenceResponse> {
    const started = performance.now();
    const attempt: { version?: number } = {};
    let reserved: ReservedOutputs | undefined;
    try {
      if (command.sharedMemoryOutputs?.size) reserved = this.sharedMemory.reserve(command.sharedMemoryOutputs);
      const response = await this.run(command, attempt);
      if (reserved) for (const output of response.outputs) if (command.sharedMemoryOutputs!.has(output.name)) reserved.write(output);
      const parameters = response.parameters as { queue_time_us: number; compute_time_us: number };
      this.metrics.requestSucceeded(command.modelName, attempt.version!, {
        totalMs: performance.now() - started,
        queueMicros: parameters.queue_time_us,
        computeMicros: parameters.compute_time_us,
      });
      return response;
    } catch (error) {
      this.metrics.requestFailed(command.modelName, attempt.version ?? command.version, error);
      throw error;
    } finally {
      reserved?.release();
    }
  }

  /**
   * Judges what a transport read of a request before decoding any of its elements (names,
   * datatypes, shapes, element counts where the body tells them) against the versions that may
   * serve it: the one named, else the default or any READY version a rollout may route to. Throws
   * the default's refusal when none would take it, so that a body of millions of elements for the
   * wrong shape is refused before they are decoded; the decoded request is checked again in full
   * against the version chosen. A refusal is counted as a failed request of that version.
   */
  judge(modelName: string, version: number | undefined, inputs: readonly InputHeader[], requestedOutputs: readonly string[]): void {
    let judged = version;
    try {
      const model = this.registry.get(modelName);
      const first = model.versionToServe(version);
      judged = first.version;
      const candidates = version === undefined ? [first, ...model.readyVersions.filter((v) => v !== first)] : [first];
      let refusal: unknown;
      for (const candidate of candidates) {
        const config = candidate.config!;
        try {
          judgeInputHeaders(config.generation ? generativeInputHeaders(inputs) : inputs, requestedOutputs, servedSignature(config), config.maxBatchSize);
          return;
        } catch (error) {
          refusal ??= error;
        }
      }
      throw refusal;
    } catch (error) {
      // Counted here, on the version it was judged against (the transport counts what it refuses itself).
      this.metrics.requestFailed(modelName, judged, error);
      throw error;
    }
  }

  /** Refuses a request for a model this server does not know before its tensors are judged (HTTP does it before reading the body). */
  assertKnownModel(modelName: string): void {
    this.registry.get(modelName);
  }

  /** A request its transport could not decode (so never executed): counted as failed. */
  refused(modelName: string, version: number | undefined, error: unknown): void {
    this.metrics.requestFailed(modelName, version, error);
  }

  private async run({ modelName, version, request, timeoutMicros, cancellation, headers, background }: RunInferenceCommand, attempt: { version?: number }): Promise<InferenceResponse> {
    const model = this.registry.get(modelName);
    const route = version === undefined ? this.router.route(modelName, headerLookup(headers)) : undefined;
    // A routed version that left service a moment ago: the default serves rather than failing.
    const served = (route && model.readyVersions.find((v) => v.version === route.version)) ?? model.versionToServe(version);
    attempt.version = served.version;
    const labels = { 'inference.model': modelName, 'inference.model_version': String(served.version) };
    this.tracing.annotateRequest(labels);
    const config = served.config!;
    if (config.generation) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', `model '${modelName}' is a generative model: ask it at /v2/models/${modelName}/generate, /v1/completions or over gRPC`);
    }
    const sampling = GENERATION_PARAMETER_NAMES.find((name) => request.parameters[name] !== undefined);
    if (sampling) throw new DomainError('INFERENCE.INVALID_REQUEST', `the request: parameter '${sampling}' is for generative models; model '${modelName}' is not one`);
    const signature = servedSignature(config);
    const outputNames = validateInferenceRequest(request, signature, config.maxBatchSize);
    checkClassifications(request.classifications, signature);
    assertResponseFits(signature, outputNames, config.maxBatchSize > 0 ? request.inputs[0]?.shape[0] : undefined, this.config.MAX_RESPONSE_BYTES);
    this.engine.checkInputs(request.inputs);
    const { priority, timeoutMicros: parameterTimeout } = schedulingParametersOf(request);
    // Copied now: the runtime takes the request's own buffers.
    const mirrored = route?.shadow !== undefined ? copyOf(request.inputs) : undefined;
    const started = performance.now();
    const traced = this.tracing.recordingContext();
    const permit = this.limits.acquire(served);
    let result;
    try {
      result = await this.breakers.run(served, () =>
        this.schedulers.for(served).enqueue({
          inputs: request.inputs,
          outputNames,
          priority,
          timeoutMicros: earliest(parameterTimeout, timeoutMicros),
          signal: cancellation === undefined ? undefined : this.cancellations.signalOf(cancellation),
          trace: traced,
          background,
        }),
      );
    } catch (error) {
      const failure = errorKindOf(error);
      if (failure.overload) permit.dropped();
      else permit.ignored();
      if (route && failure.blamesVersion) this.router.recordOutcome(modelName, served.version, { ok: false, latencyMs: performance.now() - started });
      if (mirrored) void this.mirror(modelName, route!.shadow!, mirrored, request.requestedOutputs);
      throw error;
    }
    permit.succeeded(performance.now() - started);
    if (traced) {
      const enqueuedAtMs = performance.timeOrigin + started;
      this.tracing.recordSpan('queue', traced, enqueuedAtMs, enqueuedAtMs + result.queueMicros / 1000, { ...labels, 'inference.batch_size': result.batchSize });
    }
    if (route) this.router.recordOutcome(modelName, served.version, { ok: true, latencyMs: performance.now() - started });
    if (mirrored) void this.mirror(modelName, route!.shadow!, mirrored, request.requestedOutputs, result.outputs);
    return {
      modelName,
      modelVersion: String(served.version),
      id: request.id,
      parameters: { queue_time_us: result.queueMicros, compute_time_us: result.computeMicros, batch_size: result.batchSize },
      outputs: request.classifications
        ? classifyOutputs(result.outputs, request.classifications, config.maxBatchSize > 0, (output) => config.labels.get(output))
        : result.outputs,
    };
  }

  /**
   * Runs a copy of a request on the shadow version, as background work (behind every client
   * request, never batched with one), and counts its latency, failure and divergence from the
   * client's answer. Nothing of it reaches the client; it never throws.
   */
  private async mirror(modelName: string, shadowVersion: number, inputs: Tensor[], requestedOutputs: readonly string[], answer?: readonly Tensor[]): Promise<void> {
    const shadow: ModelVersion | undefined = this.registry.find(modelName)?.readyVersions.find((v) => v.version === shadowVersion);
    if (!shadow) return;
    const started = performance.now();
    try {
      const config = shadow.config!;
      const outputNames = validateInferenceRequest({ parameters: {}, inputs, requestedOutputs }, servedSignature(config), config.maxBatchSize);
      const { outputs } = await this.schedulers.for(shadow).enqueue({ inputs, outputNames, background: true });
      const divergence = answer ? outputDivergence(answer, outputs) : undefined;
      // Answers that cannot be compared (another shape or datatype) count as a failure of the shadow.
      const ok = !answer || divergence !== undefined;
      this.router.recordOutcome(modelName, shadowVersion, { ok, latencyMs: performance.now() - started, divergence });
    } catch (error) {
      if (errorKindOf(error).shed) return; // shed, not failed
      this.router.recordOutcome(modelName, shadowVersion, { ok: false, latencyMs: performance.now() - started });
      this.logger.debug(`shadow version ${shadowVersion} of '${modelName}' failed: ${(error as Error).message}`);
    }
  }
}

function copyOf(inputs: readonly Tensor[]): Tensor[] {
  return inputs.map((tensor) => ({ ...tensor, shape: [...tensor.shape], data: tensor.data.slice() as Tensor['data'] }));
}

/** The smaller of two client timeouts; 0 (Triton's "none") and absent do not count. */
function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (!a) return b || undefined;
  return b ? Math.min(a, b) : a;
}

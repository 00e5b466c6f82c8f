import { UseGuards } from '@nestjs/common';
import { GrpcMethod, GrpcStreamCall } from '@nestjs/microservices';
import { Metadata, type ServerDuplexStream, type ServerUnaryCall } from '@grpc/grpc-js';
import type { CancellationSignal } from '../../../domain/inference/dynamic-batch-scheduler.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { SystemSharedMemory } from '../../../domain/shared-memory/system-shared-memory.js';
import { AppConfig } from '../../../infra/config/app-config.js';
import { callCancellation, metadataRecord, metadataValue, microsUntilDeadline, peerAddress, type GrpcServerCall } from '../../../infra/grpc/call-context.js';
import { serveConcurrently } from '../../../infra/grpc/concurrent-stream.js';
import { INFERENCE_SERVICE } from '../../../infra/grpc/grpc-options.js';
import { namedModel } from '../../../infra/grpc/malformed-request.js';
import { Tracing } from '../../../infra/tracing/tracing.js';
import { encodeModelInferResponse, readModelInferRequest, type DecodedInferRequest, type GrpcInferEnvelope } from '../../../infra/grpc/infer-message.codec.js';
import type {
  ModelInferRequestMessage,
  ModelInferResponseMessage,
  ModelStreamInferResponseMessage,
} from '../../../infra/grpc/inference-messages.js';
import { grpcErrorOf } from '../../../infra/transport/error-response.filter.js';
import { StreamMetrics } from '../../observability/metrics/stream-metrics.js';
import { ClientQuota } from '../../throttling/client-quota.js';
import { ClientThrottlerGuard } from '../../throttling/client-throttler.guard.js';
import { RunInferenceHandler } from './run-inference.handler.js';
import { RefusalBeforeReading } from './refusal-before-reading.js';
import { MODEL_VERSION_HEADER } from '../../../infra/transport/model-version-header.js';
import type { ParameterValue } from '../../../domain/inference/inference-request.js';
import type { TensorForm } from '../../../infra/grpc/infer-message.codec.js';
import { TEXT_OUTPUT } from '../../../domain/registry/generative-model.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { GenerateTextHandler, wholeText, type Generation } from '../generate-text/generate-text.handler.js';
import { sharedMemoryInputs } from '../../../infra/transport/shared-memory-tensors.js';
import { RequestCancellations } from '../../../domain/inference/request-cancellations.port.js';
import { GrpcController } from '../../observability/tracing/grpc-controller.decorator.js';

/**
 * Triton marks each ModelStreamInfer answer with `triton_final_response`: true on the last answer of
 * a request. A request to an ONNX model has exactly one answer, the final one, a failure included
 * (Triton leaves the mark out of an answer refusing a request before it is queued; here every
 * answer carries it, so a client counting final answers can rely on it). A generative model answers
 * in Triton's decoupled mode: one answer per token, false on each but the last.
 */
const FINAL_RESPONSE = { triton_final_response: { bool_param: true } } as const;


/** Requests of one ModelStreamInfer stream handled at once; reading pauses beyond it (or beyond GRPC_STREAM_MAX_BUFFERED_BYTES held). */
const MAX_IN_FLIGHT_PER_STREAM = 256;

/**
 * KServe V2 `ModelInfer` and Triton's `ModelStreamInfer`. The call's deadline is the request's
 * timeout in the scheduler, and a cancelled call leaves the queue (or its rows are discarded).
 * The call's metadata is what rollout rules and sticky keys read; a unary answer's initial
 * metadata names the version that computed it (`x-model-version`).
 */
@GrpcController()
export class InferGrpcController {
  constructor(
    private readonly handler: RunInferenceHandler,
    private readonly tracing: Tracing,
    private readonly quota: ClientQuota,
    private readonly sharedMemory: SystemSharedMemory,
    private readonly config: AppConfig,
    private readonly streamMetrics: StreamMetrics,
    private readonly generation: GenerateTextHandler,
    private readonly cancellations: RequestCancellations,
    private readonly refusals: RefusalBeforeReading,
  ) {}

  @GrpcMethod(INFERENCE_SERVICE, 'ModelInfer')
  @UseGuards(ClientThrottlerGuard)
  async modelInfer(message: ModelInferRequestMessage, metadata: Metadata, call: ServerUnaryCall<unknown, unknown>): Promise<ModelInferResponseMessage> {
    const answer = await this.infer(message, call, callCancellation(call), metadataRecord(metadata));
    // A generative model's answer is the whole text, in one response.
    const response = 'generation' in answer ? await wholeAnswer(answer) : answer.response;
    const version = new Metadata();
    version.set(MODEL_VERSION_HEADER, response.model_version);
    call.sendMetadata(version);
    return response;
  }

  /**
   * Each request of the stream is answered on its own, as soon as it completes, with its `id` and
   * `triton_final_response: true`. A failed request is answered with `error_message` (and its id)
   * and the stream goes on, as Triton does.
   */
  @GrpcStreamCall(INFERENCE_SERVICE, 'ModelStreamInfer')
  modelStreamInfer(call: ServerDuplexStream<ModelInferRequestMessage, ModelStreamInferResponseMessage>): Promise<void> {
    const cancellation = callCancellation(call);
    const headers = metadataRecord(call.metadata);
    // No guard on the stream itself: each of its requests takes a token, and is refused on its own.
    // (A guard refusing a stream call would reject a promise Nest's gRPC server never catches.)
    const address = peerAddress(call);
    const client = this.quota.clientOf({ header: (name) => metadataValue(call.metadata, name), address });
    return serveConcurrently(
      call,
      (message) =>
        Promise.resolve()
          .then(() => this.quota.admitAddress(address, 'grpc'))
          .then(() => this.quota.admit(client, 'grpc'))
          .then(() => this.infer(message, call, cancellation, headers))
          .then(
            (answer): Iterable<ModelStreamInferResponseMessage> | AsyncIterable<ModelStreamInferResponseMessage> =>
              'generation' in answer ? tokenAnswers(answer, message) : [{ error_message: '', infer_response: { ...answer.response, parameters: { ...answer.response.parameters, ...FINAL_RESPONSE } } }],
            (error: unknown) => [failedAnswer(message, error)],
          ),
      { maxInFlight: MAX_IN_FLIGHT_PER_STREAM, maxBufferedBytes: this.config.GRPC_STREAM_MAX_BUFFERED_BYTES, observer: this.streamMetrics },
    );
  }

  /** One answer, or a generation under way when the model is generative (its version chosen as for any request). */
  private async infer(
    message: ModelInferRequestMessage,
    call: GrpcServerCall,
    signal: CancellationSignal,
    headers: Readonly<Record<string, string>>,
  ): Promise<{ response: ModelInferResponseMessage } | GenerationAnswer> {
    let decoded: DecodedInferRequest;
    let version: number | undefined;
    let envelope: GrpcInferEnvelope;
    // A full queue refuses before the tensors are read or judged, as HTTP refuses before the body is read.
    const model = namedModel(message);
    const full = model === undefined ? undefined : this.refusals.queueFull(model, message.model_version || undefined);
    if (model !== undefined && full) {
      this.handler.refused(model, full.version, full.error);
      throw full.error;
    }
    try {
      // The model is judged before the tensors (a message protobuf could not decode names none).
      if (model !== undefined) this.handler.assertKnownModel(model);
      envelope = readModelInferRequest(message);
      version = requestedVersion(envelope.modelVersion);
    } catch (error) {
      this.handler.refused(message.model_name ?? '', undefined, error);
      throw error;
    }
    // Judged on what it declares before a single element is decoded (a wrong message costs a count, not a decode); counts its refusal.
    this.handler.judge(envelope.modelName, version, envelope.inputs, envelope.requestedOutputs);
    try {
      decoded = envelope.decode(sharedMemoryInputs(this.sharedMemory, this.config.MAX_REQUEST_BYTES));
    } catch (error) {
      this.handler.refused(message.model_name ?? '', undefined, error);
      throw error;
    }
    if (this.generation.serves(decoded.modelName, version)) {
      if (decoded.sharedMemoryOutputs.size > 0) throw new DomainError('INFERENCE.INVALID_REQUEST', 'a generative model answers its text in the response, not in shared memory');
      // The request's parameters are the generation's (the codec took only known ones); binary_data_output is the answer's form.
      const { binary_data_output: _form, ...parameters } = decoded.request.parameters;
      const generation = await this.generation.generate({
        modelName: decoded.modelName,
        version,
        prompt: { text: (decoded.request.inputs[0].data as string[])[0] },
        parameters,
        timeoutMicros: microsUntilDeadline(call),
        headers,
      });
      signal.onAbort(() => generation.stream.cancel('the client cancelled the call'));
      return { generation, id: decoded.request.id, form: decoded.responseForm };
    }
    const outputSlices = decoded.sharedMemoryOutputs;
    const cancellation = this.cancellations.register(signal);
    let response;
    try {
      response = await this.handler.execute({
        modelName: decoded.modelName,
        version,
        request: decoded.request,
        timeoutMicros: microsUntilDeadline(call),
        cancellation,
        headers,
        sharedMemoryOutputs: outputSlices,
      });
    } finally {
      this.cancellations.release(cancellation);
    }
    return {
      response: this.tracing.span('response', { 'inference.model': response.modelName, 'inference.model_version': response.modelVersion }, () =>
        encodeModelInferResponse(response, decoded.responseForm, (name) => outputSlices.has(name)),
      ),
    };
  }
}

/** A generation started by ModelInfer or ModelStreamInfer, with what its answers repeat of the request. */
interface GenerationAnswer {
  readonly generation: Generation;
  readonly id?: string;
  readonly form: TensorForm;
}

/** One answer of a generation: the text of `text` as the BYTES output text_output [1]. */
function textAnswer({ generation, id, form }: GenerationAnswer, text: string, parameters: Record<string, ParameterValue>): ModelInferResponseMessage {
  return encodeModelInferResponse(
    { modelName: generation.modelName, modelVersion: String(generation.modelVersion), id, parameters, outputs: [{ name: TEXT_OUTPUT, datatype: 'BYTES', shape: [1], data: [text] }] },
    form,
  );
}

async function wholeAnswer(answer: GenerationAnswer): Promise<ModelInferResponseMessage> {
  const { text, finishReason, usage } = await wholeText(answer.generation);
  return textAnswer(answer, text, { finish_reason: finishReason, prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens });
}

/**
 * Triton's decoupled answers of a generation: one per token with the text it completes, the last
 * with `triton_final_response: true` and why the sequence ended. A failure mid-way is a final
 * answer with `error_message`. Returning early (the call cancelled) cancels the generation.
 */
async function* tokenAnswers(answer: GenerationAnswer, message: ModelInferRequestMessage): AsyncGenerator<ModelStreamInferResponseMessage> {
  try {
    for await (const { value, final } of answer.generation.stream) {
      const parameters: Record<string, ParameterValue> = final
        ? { triton_final_response: true, finish_reason: value.finishReason!, prompt_tokens: value.usage!.promptTokens, completion_tokens: value.usage!.completionTokens }
        : { triton_final_response: false };
      yield { error_message: '', infer_response: textAnswer(answer, value.text, parameters) };
    }
  } catch (error) {
    yield failedAnswer(message, error);
  }
}

function failedAnswer(message: ModelInferRequestMessage, error: unknown): ModelStreamInferResponseMessage {
  return {
    error_message: grpcErrorOf(error).details,
    infer_response: { id: message.id ?? '', model_name: message.model_name ?? '', model_version: message.model_version ?? '', parameters: FINAL_RESPONSE },
  };
}


import type { CancellationSignal } from './dynamic-batch-scheduler.js';
import type { InferenceRequest, InferenceResponse, InputHeader } from './inference-request.js';

export interface RunInferenceCommand {
  readonly modelName: string;
  readonly version?: number;
  readonly request: InferenceRequest;
  /** A timeout the transport carries (HTTP header, gRPC deadline), in microseconds. */
  readonly timeoutMicros?: number;
  /** Aborted when the client has gone away. */
  readonly signal?: CancellationSignal;
  /** The request's headers (HTTP) or metadata (gRPC), by lower-case name: what rollout rules and sticky keys read. */
  readonly header?: (name: string) => string | undefined;
  /** Puts the outputs where the client asked (shared memory) before the request counts as answered; a throw fails it. */
  readonly deliver?: (response: InferenceResponse) => void;
  /** Work no client waits on (an async job): queued at the scheduler's background level, below every client request. */
  readonly background?: boolean;
}

/**
 * The inference use case as other bounded contexts call it (async jobs run through it exactly as a
 * client's infer does): the inference context's RunInferenceHandler is bound to it.
 */
export abstract class InferenceUseCase {
  /** Runs one request to its answer (routing, validation, scheduling, limits, breaker). */
  abstract execute(command: RunInferenceCommand): Promise<InferenceResponse>;
  /** Refuses, before its tensors are decoded, a request no version of the model would take. */
  abstract judge(modelName: string, version: number | undefined, inputs: readonly InputHeader[], requestedOutputs: readonly string[]): void;
  /** Refuses a request for a model this server does not know. */
  abstract assertKnownModel(modelName: string): void;
}

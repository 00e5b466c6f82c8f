import type { RegionSlice } from '../shared-memory/system-shared-memory.js';
import type { InferenceRequest, InferenceResponse, InputHeader } from './inference-request.js';

/**
 * One request to run, as plain data only (no function, no class instance: it survives
 * `structuredClone`), so that it can cross a thread or process boundary to the owner of the
 * version's scheduler.
 */
export interface RunInferenceCommand {
  readonly modelName: string;
  readonly version?: number;
  readonly request: InferenceRequest;
  /** A timeout the transport carries (HTTP header, gRPC deadline), in microseconds. */
  readonly timeoutMicros?: number;
  /** The id under which the transport registered the signal that fires when the client goes (RequestCancellations). */
  readonly cancellation?: string;
  /** The request's headers (HTTP) or text metadata (gRPC), by lower-case name: what rollout rules and sticky keys read. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * The shared memory slices the outputs named go to (SystemSharedMemory): reserved before the
   * request is queued, and written before it counts as answered (a failure fails it).
   */
  readonly sharedMemoryOutputs?: ReadonlyMap<string, RegionSlice>;
  /** Work no client waits on (an async job): queued at the scheduler's background level, below every client request. */
  readonly background?: boolean;
}

/** A command's headers as the lookup rollout rules and sticky keys read (own names only: `constructor` is no header). */
export function headerLookup(headers: Readonly<Record<string, string>> | undefined): (name: string) => string | undefined {
  return headers ? (name) => (Object.hasOwn(headers, name) ? headers[name] : undefined) : NO_HEADER;
}

const NO_HEADER = (): undefined => undefined;

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

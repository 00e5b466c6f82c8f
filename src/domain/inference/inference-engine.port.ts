import type { Datatype } from '../shared/datatype.js';
import type { RuntimeKey } from '../shared/model-version-id.js';
import type { ModelSignature, Tensor } from './tensor.js';

/** The runtime facts a loaded instance reports back. */
export interface LoadedModel {
  /** The signature as the model file declares it (datatypes, names, `-1` for symbolic dims). */
  readonly signature: ModelSignature;
  /** The execution provider actually in use, after any fallback (e.g. `cpu` when CUDA is missing). */
  readonly executionProvider: string;
}

export interface RuntimeOptions {
  readonly instanceCount: number;
  /** Execution providers to try in order; the adapter falls back to `cpu`. */
  readonly executionProviders: readonly string[];
  readonly intraOpThreads?: number;
  readonly interOpThreads?: number;
  readonly allowSpinning: boolean;
}

/** Where a warm-up input's values come from, as the runtime builds them: a file as configured (`file`) and resolved (`path`). */
type WarmupValues = { readonly kind: 'zero' } | { readonly kind: 'random' } | { readonly kind: 'file'; readonly file: string; readonly path: string };

/** One input of a warm-up run: its complete shape, made of `rows` rows that each hold the same values. */
export interface WarmupTensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly shape: readonly number[];
  readonly rows: number;
  readonly values: WarmupValues;
}

/** A warm-up sample as the runtime runs it: `runs` times, with every output computed. */
export interface WarmupSample {
  readonly name: string;
  readonly inputs: readonly WarmupTensor[];
  readonly runs: number;
}

/** How one call to {@link InferenceEngine.run} is carried out. */
export interface EngineRunOptions {
  /** A W3C traceparent under which the adapter reports the computation (tracing), if any. */
  readonly traceContext?: string;
  /**
   * The longest the call may take, from the call (ms). Past it the call fails with
   * INFERENCE.DEADLINE_EXCEEDED and, if it is computing, the instance computing it is stopped and
   * replaced: no run goes on for nobody. Absent: as long as the run takes.
   */
  readonly timeLimitMs?: number;
  /**
   * Outputs holding more (as response-limit.ts counts them) are dropped where they were computed
   * and the run fails with INFERENCE.RESPONSE_TOO_LARGE.
   */
  readonly maxOutputBytes?: number;
}

/**
 * A batch as the scheduler hands it to an instance: each member request's inputs, in member order
 * (the same names and datatypes, the same shapes past the batch axis).
 */
export type BatchMembers = readonly (readonly Tensor[])[];

/** The outputs of one run, cut into each member's rows, and where the run's time went (Triton's compute_input, compute_infer, compute_output). */
export interface EngineRun {
  /** Each member's outputs, in member order: its rows of each output. */
  readonly outputs: Tensor[][];
  readonly computeMicros: number;
  /** Gathering the members' inputs into the batch and handing it to the runtime. */
  readonly inputMicros: number;
  /** Reading the outputs and cutting them into the members' rows. */
  readonly outputMicros: number;
}

export interface InstanceStatus {
  readonly key: RuntimeKey;
  readonly instances: number;
  readonly busy: number;
  readonly queued: number;
  readonly executionProvider: string;
  /** Instances that died while serving (crashed or exited), since the version loaded. */
  readonly lostInstances: number;
  /** Lost instances replaced by a new one (the model reloaded in it), since the version loaded. */
  readonly restartedInstances: number;
}

/**
 * Port to whatever runs models. `key` identifies one loaded model version; the adapter hosts
 * `instanceCount` sessions for it and runs each call on a free one.
 */
export abstract class InferenceEngine {
  abstract load(key: RuntimeKey, modelPath: string, options: RuntimeOptions): Promise<LoadedModel>;
  /**
   * Refuses (with a DomainError naming the input and element) what this runtime cannot carry.
   * Called on each request before it is queued, so that one bad request never fails the batch it
   * would have joined.
   */
  abstract checkInputs(inputs: readonly Tensor[]): void;
  /**
   * Runs a batch: the members' inputs are gathered (concatenated along the batch axis) and the
   * outputs split back into each member's rows where the model runs, as Triton's scheduler hands its
   * requests to the instance, not on the scheduler's thread. A batch of one runs as it is.
   *
   * Buffer ownership, as Triton's scheduler and instance share it: the scheduler owns an enqueued
   * request's input arrays (see DynamicBatchScheduler.enqueue) and lends them to `run` for the call;
   * the engine reads them (and may copy them where the model runs) but never writes to them or keeps
   * them after the call settles. An input's array may be a view of the request's own bytes (its HTTP
   * body, its gRPC message), never of memory a client can still write (shared memory regions are
   * copied when decoded). The outputs returned are the caller's.
   */
  abstract run(key: RuntimeKey, members: BatchMembers, outputNames: readonly string[], options?: EngineRunOptions): Promise<EngineRun>;
  /**
   * Instances of `key` (0 when not loaded): the runs a scheduler hands over at once. More would
   * wait inside the engine, out of reach of the scheduler's priorities, timeouts and batching.
   */
  abstract concurrency(key: RuntimeKey): number;
  /**
   * Runs warm-up samples on every instance of `key`, one after another, before the version takes
   * traffic; the values are built where the model runs (never on the caller's thread). An instance
   * that later replaces a lost one runs them too before it serves. Rejects, naming the sample,
   * when one fails, or when an instance has not ended its samples within `timeLimitMs` (it is
   * then stopped).
   */
  abstract warmUp(key: RuntimeKey, samples: readonly WarmupSample[], timeLimitMs?: number): Promise<void>;
  /**
   * Refuses new calls, fails those not started, lets running ones end (each within its time
   * limit, when it has one), then releases the instances.
   */
  abstract unload(key: RuntimeKey): Promise<void>;
  abstract status(): InstanceStatus[];
}

import type { Clock, TimerHandle } from '../shared/clock.js';
import { DomainError } from '../shared/domain-error.js';
import { batchCompatibilityKey, batchRows } from './batch.js';
import type { BatchMembers, EngineRun } from './inference-engine.port.js';
import { BatchCostModel } from './batch-cost-model.js';
import { InferenceStatistics, type StatisticsSnapshot } from './inference-statistics.js';
import { RequestQueue, type Queued } from './request-queue.js';
import { queuePolicyOf, type QueuePolicy, type SchedulingPolicy, type TimeoutAction } from './scheduling-policy.js';
import type { Tensor } from './tensor.js';

/**
 * Tells the scheduler the client has gone. Smaller than AbortSignal on purpose: the HTTP adapter
 * implements it on the response's own 'close' event, which costs a fraction of an AbortController
 * per request (measured: AbortController + EventTarget listeners were 3.5% of the main thread).
 */
export interface CancellationSignal {
  readonly aborted: boolean;
  /** True when the abort is the client's deadline passing (the request timed out, it was not cancelled). */
  readonly deadlinePassed?: boolean;
  /** Calls `listener` once when the client goes; returns what unsubscribes it. */
  onAbort(listener: () => void): () => void;
}

/** A signal its owner aborts (a job cancelled, a forwarded request whose client went away). */
export class ManualCancellation implements CancellationSignal {
  aborted = false;
  deadlinePassed = false;
  private readonly listeners = new Set<() => void>();

  onAbort(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** `deadlinePassed`: the abort is the client's deadline, not a cancel (a forwarded gRPC call's). */
  abort(deadlinePassed = false): void {
    if (this.aborted) return;
    this.aborted = true;
    this.deadlinePassed = deadlinePassed;
    for (const listener of this.listeners) listener();
  }
}

/** One request as the scheduler takes it: already checked against the model's signature. */
export interface SchedulerRequest {
  readonly inputs: readonly Tensor[];
  readonly outputNames: readonly string[];
  /** Priority level asked for; 0 or absent means the model's default level. */
  readonly priority?: number;
  /**
   * The client's timeout in microseconds (Triton's `timeout` parameter, a gRPC deadline): the
   * longest it waits in the queue. It may only lower the queue policy's timeout, and is ignored
   * when the policy does not allow overrides (Triton). A client that stops waiting cancels.
   */
  readonly timeoutMicros?: number;
  /** Aborted when the client is gone: the request is dropped, or its result discarded. */
  readonly signal?: CancellationSignal;
  /**
   * Work no client waits for (a rollout's shadow copy): it waits behind every client request, is
   * never batched with one, and is refused beyond {@link MAX_BACKGROUND_QUEUE} waiting.
   */
  readonly background?: boolean;
  /** Opaque to the scheduler: handed to the BatchRunner with the batch (tracing links a batch to its requests). */
  readonly trace?: unknown;
}

/** Background requests a version holds at most; more are refused rather than queued. */
export const MAX_BACKGROUND_QUEUE = 64;

const BACKGROUND_QUEUE_POLICY: QueuePolicy = { timeoutAction: 'REJECT', defaultTimeoutMicros: 0, allowTimeoutOverride: true, maxQueueSize: MAX_BACKGROUND_QUEUE };

export interface SchedulerResult {
  readonly outputs: Tensor[];
  /** From enqueue to the start of its batch's run. */
  readonly queueMicros: number;
  /** The run of its batch, as the runtime measured it. */
  readonly computeMicros: number;
  /** Rows in the run that served it (its own included). */
  readonly batchSize: number;
}

/** Runs one (merged) batch on a free instance and reports how long the runtime computed. */
/** Runs one merged batch; `traces` are its members' {@link SchedulerRequest.trace} values, in batch order. */
export type BatchRunner = (members: BatchMembers, outputNames: readonly string[], traces: readonly unknown[]) => Promise<EngineRun>;

export interface SchedulerLimits {
  /** Batches that may run at once: what the runtime's instances take without queueing. */
  readonly concurrency: () => number;
  /** No request waits or runs longer than this (ms): answered DEADLINE_EXCEEDED then. */
  readonly maxTimeoutMs: number;
  /** Told of every successful run (an execution) and its rows: where metrics count them. */
  readonly onExecution?: (rows: number) => void;
  /**
   * Told each time refusalBeforeReading() changes its answer (the queue filled, or found room):
   * how a transport that cannot ask at each request (an ingress thread) learns it.
   */
  readonly onRefusalChange?: () => void;
}

interface Pending extends Queued {
  readonly request: SchedulerRequest;
  readonly key: string;
  readonly rows: number;
  readonly enqueuedAt: number;
  /** The server's cap (ms after enqueue): answered DEADLINE_EXCEEDED then, queued or running. */
  readonly deadlineMs: number;
  readonly deadlineTimer: TimerHandle;
  /** The queue policy's timeout (ms after enqueue), which only counts while the request waits. */
  queueTimeoutMs?: number;
  queueTimer?: TimerHandle;
  settled: boolean;
  readonly resolve: (result: SchedulerResult) => void;
  readonly reject: (error: Error) => void;
  unsubscribe?: () => void;
}

/** Where a run's time went, in milliseconds: merging inputs, computing, splitting outputs. */
interface RunTiming {
  readonly inputMs: number;
  readonly inferMs: number;
  readonly outputMs: number;
}

const toMicros = (ms: number): number => Math.round(ms * 1000);

/**
 * Triton's dynamic batcher for one model version. Requests wait in a priority queue; whenever an
 * instance is free, the request served next and every compatible request behind it (same shapes
 * past the batch axis, same outputs) form a batch of at most `maxBatchSize` rows. The batch
 * leaves at once when it reaches the maximum or a preferred size, and otherwise when its oldest
 * request has waited `maxQueueDelayMicros`. While every instance is busy, arrivals accumulate, so
 * batches grow with the load.
 *
 * Every timeout is a timer of its own, so a request is answered the moment its deadline passes,
 * whether it waits or runs, never when some batch ends (triton-inference-server/server#7512).
 */
export class DynamicBatchScheduler {
  private readonly queue: RequestQueue<Pending>;
  private inflight = 0;
  private dispatchScheduled = false;
  private windowTimer?: TimerHandle;
  private stopped?: string;
  private readonly costs = new BatchCostModel();
  private readonly statistics = new InferenceStatistics();
  private readonly queueFullErrors = new Map<number, DomainError>();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly backgroundLevel: number;
  /** What refusalBeforeReading() answered when onRefusalChange was last told. */
  private refusing = false;

  constructor(
    private readonly policy: SchedulingPolicy,
    private readonly runBatch: BatchRunner,
    private readonly limits: SchedulerLimits,
    private readonly clock: Clock,
  ) {
    // One level more than the model has, below all of them: the background level.
    this.backgroundLevel = Math.max(1, policy.priorityLevels) + 1;
    this.queue = new RequestQueue(this.backgroundLevel);
  }

  /** Batches running now. */
  get inflightCount(): number {
    return this.inflight;
  }

  /** Requests waiting for a batch. */
  get queuedCount(): number {
    return this.queue.size;
  }

  /** Counts and cumulative durations since this scheduler started (Triton's model statistics). */
  statisticsSnapshot(): StatisticsSnapshot {
    return this.statistics.snapshot();
  }

  /**
   * The refusal a request of the default priority would get now because the queue is full, if it
   * would: lets a transport refuse before it reads and decodes the request. Only for a model with
   * a single priority level, where every request's level is known without reading it.
   */
  refusalBeforeReading(): DomainError | undefined {
    if (this.policy.priorityLevels > 0) return undefined;
    return this.queueFull(1);
  }

  private noteRefusal(): void {
    if (!this.limits.onRefusalChange) return;
    const refusing = this.refusalBeforeReading() !== undefined;
    if (refusing === this.refusing) return;
    this.refusing = refusing;
    this.limits.onRefusalChange();
  }

  private queueFull(priorityLevel: number): DomainError | undefined {
    const { maxQueueSize } = this.queuePolicyAt(priorityLevel);
    if (maxQueueSize === 0 || this.queue.sizeAt(priorityLevel) < maxQueueSize) return undefined;
    // One error per level, made once: under overload most answers are this one, and capturing a
    // stack per refusal was 9% of the main thread (measured).
    let refusal = this.queueFullErrors.get(priorityLevel);
    if (!refusal) {
      refusal = new DomainError('INFERENCE.QUEUE_FULL', `the queue of this model is full (max_queue_size ${maxQueueSize}); retry later`, { retryAfterSeconds: 1 });
      this.queueFullErrors.set(priorityLevel, refusal);
    }
    return refusal;
  }

  /**
   * Queues a request, which the scheduler then owns until it settles: from this call on, the caller
   * (handler, transport) neither reads nor writes its input arrays; the scheduler merges them into a
   * batch (a copy) or lends them to the engine as they are, and the result's outputs are the caller's.
   */
  enqueue(request: SchedulerRequest): Promise<SchedulerResult> {
    return new Promise((resolve, reject) => {
      if (this.stopped !== undefined) throw new DomainError('REGISTRY.VERSION_NOT_READY', this.stopped);
      if (request.signal?.aborted) throw cancelled();
      const priorityLevel = request.background ? this.backgroundLevel : this.levelOf(request.priority);
      const queuePolicy = this.queuePolicyAt(priorityLevel);
      const full = this.queueFull(priorityLevel);
      if (full) throw full;
      const enqueuedAt = this.clock.now();
      // Triton: the client's timeout counts only where the policy allows an override, only lowers
      // it, and 0 means none.
      const clientMs = queuePolicy.allowTimeoutOverride && request.timeoutMicros ? request.timeoutMicros / 1000 : Infinity;
      const policyMs = queuePolicy.defaultTimeoutMicros > 0 ? queuePolicy.defaultTimeoutMicros / 1000 : Infinity;
      const queueTimeoutMs = Math.min(policyMs, clientMs);
      const deadlineMs = this.limits.maxTimeoutMs;
      const pending: Pending = {
        request,
        key: batchCompatibilityKey(request.inputs, request.outputNames),
        rows: this.policy.batching ? batchRows(request.inputs) : 1,
        priorityLevel,
        enqueuedAt,
        deadlineMs,
        waiting: true,
        settled: false,
        resolve,
        reject,
        deadlineTimer: this.clock.setTimer(() => this.expire(pending, deadlineMs), deadlineMs),
      };
      if (queueTimeoutMs < deadlineMs) {
        pending.queueTimeoutMs = queueTimeoutMs;
        pending.queueTimer = this.clock.setTimer(() => this.queueTimeoutPassed(pending, queuePolicy.timeoutAction), queueTimeoutMs);
      }
      pending.unsubscribe = request.signal?.onAbort(() => this.cancel(pending));
      this.queue.push(pending);
      this.costs.recordArrival(enqueuedAt);
      // A full batch has nothing to wait for: under load an event-loop turn can last long.
      if (!this.policy.batching || this.queue.size >= this.policy.maxBatchSize) this.dispatch();
      else {
        this.scheduleDispatch();
        this.noteRefusal();
      }
    });
  }

  /** Refuses new requests and fails the waiting ones; running batches finish and answer. */
  stop(reason: string): void {
    this.stopped = reason;
    this.clock.clearTimer(this.windowTimer);
    for (const pending of this.queue.drain()) this.settle(pending, new DomainError('REGISTRY.VERSION_NOT_READY', reason));
    this.noteRefusal();
    this.notifyIfIdle();
  }

  /**
   * Refuses new requests, serves every queued and running one, and resolves once none is left:
   * how a version leaves service without failing a request it accepted.
   */
  drain(reason: string): Promise<void> {
    this.stopped = reason;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.notifyIfIdle();
    return idle;
  }

  private notifyIfIdle(): void {
    if (this.queue.size > 0 || this.inflight > 0 || this.idleWaiters.length === 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private queuePolicyAt(priorityLevel: number): QueuePolicy {
    return priorityLevel === this.backgroundLevel ? BACKGROUND_QUEUE_POLICY : queuePolicyOf(this.policy, priorityLevel);
  }

  private levelOf(priority: number | undefined): number {
    const levels = this.policy.priorityLevels;
    if (priority === undefined || priority === 0) return levels > 0 ? this.policy.defaultPriorityLevel : 1;
    if (levels === 0) return 1; // Triton ignores priorities on a model without levels
    if (!Number.isInteger(priority) || priority < 0 || priority > levels) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', `priority ${priority} is not a level of this model: use 1 (first served) to ${levels}, or 0 for the default ${this.policy.defaultPriorityLevel}`);
    }
    return priority;
  }

  /**
   * A batch that may still grow is dispatched once per turn of the event loop, so that requests
   * parsed together batch together.
   */
  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return;
    this.dispatchScheduled = true;
    this.clock.defer(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    this.clock.clearTimer(this.windowTimer);
    this.windowTimer = undefined;
    const concurrency = this.limits.concurrency();
    while (this.inflight < concurrency && this.queue.size > 0) {
      const batch = this.nextBatch();
      if (!batch) break;
      void this.run(batch);
    }
    this.noteRefusal();
  }

  /** The batch to run now, or undefined when it should wait for more requests (a timer is set). */
  private nextBatch(): Pending[] | undefined {
    const head = this.queue.first()!;
    if (!this.policy.batching) {
      this.take(head);
      return [head];
    }
    const max = this.policy.maxBatchSize;
    const preferred = this.policy.preferredBatchSizes;
    const members: Pending[] = [];
    let rows = 0;
    let preferredCut = 0;
    const foreground = head.priorityLevel !== this.backgroundLevel;
    for (const pending of this.queue.inServiceOrder()) {
      if (pending.key !== head.key || rows + pending.rows > max) continue;
      // A client's batch never carries background rows: they would lengthen its run.
      if (foreground && pending.priorityLevel === this.backgroundLevel) break;
      members.push(pending);
      rows += pending.rows;
      if (preferred.includes(rows)) preferredCut = members.length;
      if (rows === max) break;
    }
    let take = members.length;
    if (rows < max) {
      const oldest = Math.min(...members.map((m) => m.enqueuedAt));
      const wait = this.windowMs(oldest);
      if (preferredCut > 0) take = preferredCut;
      else if (this.clock.now() - oldest < wait) {
        this.windowTimer = this.clock.setTimer(() => this.dispatch(), oldest + wait - this.clock.now());
        return undefined;
      }
    }
    const batch = members.slice(0, take);
    for (const pending of batch) this.take(pending);
    return batch;
  }

  /**
   * How long a forming batch waits for company. Fixed: `maxQueueDelayMicros`. Adaptive: wait only
   * while requests arrive faster than one run's fixed cost, the time each merged request saves
   * the instance, and give up when the next one is overdue (twice the mean arrival interval).
   */
  private windowMs(oldest: number): number {
    const max = this.policy.maxQueueDelayMicros / 1000;
    if (!this.policy.adaptiveQueueDelay || max === 0) return max;
    const interval = this.costs.meanArrivalIntervalMs;
    const fixedCost = this.costs.fixedCostMs;
    if (interval === undefined || fixedCost === undefined || interval >= fixedCost) return 0;
    return Math.min(max, this.costs.lastArrival + 2 * interval - oldest);
  }

  private async run(batch: Pending[]): Promise<void> {
    this.inflight++;
    const startedAt = this.clock.now();
    let run: EngineRun;
    try {
      // The instance gathers the members' inputs into the batch and splits its outputs back.
      run = await this.runBatch(batch.map((p) => p.request.inputs), batch[0].request.outputNames, batch.map((p) => p.request.trace));
      if (run.outputs.length !== batch.length) throw new DomainError('INFERENCE.RUNTIME_ERROR', `the run answered ${run.outputs.length} members' outputs for a batch of ${batch.length}`);
    } catch (error) {
      this.instanceFreed();
      for (const pending of batch) this.settle(pending, error as Error);
      return;
    }
    this.instanceFreed();
    const rows = batch.reduce((sum, p) => sum + p.rows, 0);
    this.costs.recordRun(rows, this.clock.now() - startedAt);
    const split = run.outputs;
    const timing: RunTiming = { inputMs: run.inputMicros / 1000, inferMs: run.computeMicros / 1000, outputMs: run.outputMicros / 1000 };
    this.statistics.recordExecution(rows, timing.inputMs, timing.inferMs, timing.outputMs);
    this.limits.onExecution?.(rows);
    batch.forEach((pending, i) =>
      this.settle(pending, undefined, { outputs: split[i], queueMicros: toMicros(startedAt - pending.enqueuedAt), computeMicros: run.computeMicros, batchSize: rows }, timing),
    );
  }

  /**
   * The next batch leaves before this one's answers are written: what queued while it ran is
   * ready, and the instance should not wait for the main thread's response work.
   */
  private instanceFreed(): void {
    this.inflight--;
    this.dispatch();
    this.notifyIfIdle();
  }

  /** Out of the queue into a batch: the queue policy's timeout no longer applies. */
  private take(pending: Pending): void {
    this.queue.remove(pending);
    this.clock.clearTimer(pending.queueTimer);
  }

  /** REJECT answers the request; DELAY moves it behind the requests of its level still on time. */
  private queueTimeoutPassed(pending: Pending, action: TimeoutAction): void {
    if (!pending.waiting) return;
    if (action === 'DELAY') this.queue.delay(pending);
    else this.expire(pending, pending.queueTimeoutMs!);
  }

  private expire(pending: Pending, timeoutMs: number): void {
    const waited = pending.waiting;
    this.leaveQueue(pending);
    const where = waited ? 'in the queue' : 'while its batch ran';
    this.settle(pending, new DomainError('INFERENCE.DEADLINE_EXCEEDED', `the request's timeout (${Math.round(timeoutMs)} ms) passed ${where}`));
  }

  private cancel(pending: Pending): void {
    const waited = pending.waiting;
    this.leaveQueue(pending);
    if (!pending.request.signal?.deadlinePassed) this.settle(pending, cancelled());
    else this.settle(pending, new DomainError('INFERENCE.DEADLINE_EXCEEDED', `the client's deadline passed ${waited ? 'in the queue' : 'while its batch ran'}`));
  }

  /** A request leaving early may have held a forming batch back: the batch is reconsidered. */
  private leaveQueue(pending: Pending): void {
    if (!pending.waiting) return;
    this.queue.remove(pending);
    this.noteRefusal();
    if (this.queue.size > 0) this.scheduleDispatch();
    else this.notifyIfIdle();
  }

  private settle(pending: Pending, error?: Error, result?: SchedulerResult, timing?: RunTiming): void {
    if (pending.settled) return;
    pending.settled = true;
    this.clock.clearTimer(pending.deadlineTimer);
    this.clock.clearTimer(pending.queueTimer);
    pending.unsubscribe?.();
    const totalMs = this.clock.now() - pending.enqueuedAt;
    if (error) {
      this.statistics.recordFailure(totalMs, this.clock.epochMillis());
      pending.reject(error);
    } else {
      this.statistics.recordSuccess(pending.rows, totalMs, result!.queueMicros / 1000, timing!.inputMs, timing!.inferMs, timing!.outputMs, this.clock.epochMillis());
      pending.resolve(result!);
    }
  }
}

function cancelled(): DomainError {
  return new DomainError('INFERENCE.CANCELLED', 'the client cancelled the request');
}

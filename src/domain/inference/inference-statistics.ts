/**
 * Triton's per-model-version statistics (the statistics extension): cumulative counts and
 * durations since the version was loaded. Durations are kept in nanoseconds, Triton's unit.
 */
export interface Duration {
  count: number;
  ns: number;
}

interface BatchStatistics {
  readonly batchSize: number;
  readonly computeInput: Duration;
  readonly computeInfer: Duration;
  readonly computeOutput: Duration;
}

export interface StatisticsSnapshot {
  /** Milliseconds since the epoch of the last request answered, 0 before any. */
  readonly lastInference: number;
  /** Rows (samples) computed for successful requests. */
  readonly inferenceCount: number;
  /** Runs of the model: one per batch. */
  readonly executionCount: number;
  readonly success: Duration;
  readonly fail: Duration;
  readonly queue: Duration;
  readonly computeInput: Duration;
  readonly computeInfer: Duration;
  readonly computeOutput: Duration;
  readonly batches: readonly BatchStatistics[];
}

const zero = (): Duration => ({ count: 0, ns: 0 });
const add = (duration: Duration, ns: number): void => {
  duration.count++;
  duration.ns += ns;
};
const NS_PER_MS = 1e6;

/** The counters one scheduler keeps. */
export class InferenceStatistics {
  private lastInference = 0;
  private inferenceCount = 0;
  private executionCount = 0;
  private readonly success = zero();
  private readonly fail = zero();
  private readonly queue = zero();
  private readonly computeInput = zero();
  private readonly computeInfer = zero();
  private readonly computeOutput = zero();
  private readonly batches = new Map<number, { computeInput: Duration; computeInfer: Duration; computeOutput: Duration }>();

  /** One run of `rows` rows: merging inputs, computing, splitting outputs (milliseconds). */
  recordExecution(rows: number, inputMs: number, inferMs: number, outputMs: number): void {
    this.executionCount++;
    let batch = this.batches.get(rows);
    if (!batch) this.batches.set(rows, (batch = { computeInput: zero(), computeInfer: zero(), computeOutput: zero() }));
    add(batch.computeInput, inputMs * NS_PER_MS);
    add(batch.computeInfer, inferMs * NS_PER_MS);
    add(batch.computeOutput, outputMs * NS_PER_MS);
  }

  /** A request answered with outputs: its rows, whole duration, queue time and its share of the run. */
  recordSuccess(rows: number, totalMs: number, queueMs: number, inputMs: number, inferMs: number, outputMs: number, at: number): void {
    this.inferenceCount += rows;
    this.lastInference = at;
    add(this.success, totalMs * NS_PER_MS);
    add(this.queue, queueMs * NS_PER_MS);
    add(this.computeInput, inputMs * NS_PER_MS);
    add(this.computeInfer, inferMs * NS_PER_MS);
    add(this.computeOutput, outputMs * NS_PER_MS);
  }

  recordFailure(totalMs: number, at: number): void {
    this.lastInference = at;
    add(this.fail, totalMs * NS_PER_MS);
  }

  snapshot(): StatisticsSnapshot {
    const copy = (d: Duration): Duration => ({ count: d.count, ns: Math.round(d.ns) });
    return {
      lastInference: this.lastInference,
      inferenceCount: this.inferenceCount,
      executionCount: this.executionCount,
      success: copy(this.success),
      fail: copy(this.fail),
      queue: copy(this.queue),
      computeInput: copy(this.computeInput),
      computeInfer: copy(this.computeInfer),
      computeOutput: copy(this.computeOutput),
      batches: [...this.batches]
        .sort(([a], [b]) => a - b)
        .map(([batchSize, b]) => ({ batchSize, computeInput: copy(b.computeInput), computeInfer: copy(b.computeInfer), computeOutput: copy(b.computeOutput) })),
    };
  }
}

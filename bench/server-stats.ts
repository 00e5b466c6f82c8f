/**
 * The server's own counters (Triton's statistics extension, `GET /v2/models/{m}/stats`), read
 * around a measured window: how many runs and rows, how long the runtime computed, per batch size.
 */

interface Duration {
  count: number;
  ns: number;
}

/** The part of one model version's Triton statistics the bench reads. */
export interface ModelStats {
  readonly inferenceCount: number;
  readonly executionCount: number;
  readonly computeInfer: Duration;
  /** compute_infer per batch size (rows of the run). */
  readonly batches: ReadonlyMap<number, Duration>;
}

interface TritonStatsJson {
  model_stats?: {
    inference_count: number;
    execution_count: number;
    inference_stats: { compute_infer: Duration };
    batch_stats: { batch_size: number; compute_infer: Duration }[];
  }[];
}

export async function fetchModelStats(baseUrl: string, model: string): Promise<ModelStats> {
  const response = await fetch(`${baseUrl}/v2/models/${encodeURIComponent(model)}/stats`, { signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET /v2/models/${model}/stats answered ${response.status}: ${text}`);
  const stats = (JSON.parse(text) as TritonStatsJson).model_stats?.[0];
  if (!stats) throw new Error(`GET /v2/models/${model}/stats has no model_stats: ${text}`);
  return {
    inferenceCount: stats.inference_count,
    executionCount: stats.execution_count,
    computeInfer: stats.inference_stats.compute_infer,
    batches: new Map(stats.batch_stats.map((b) => [b.batch_size, b.compute_infer])),
  };
}

/** What happened between two readings. */
export function statsBetween(before: ModelStats, after: ModelStats): ModelStats {
  const minus = (a: Duration, b: Duration | undefined): Duration => ({ count: a.count - (b?.count ?? 0), ns: a.ns - (b?.ns ?? 0) });
  const batches = new Map<number, Duration>();
  for (const [size, duration] of after.batches) {
    const delta = minus(duration, before.batches.get(size));
    if (delta.count > 0) batches.set(size, delta);
  }
  return {
    inferenceCount: after.inferenceCount - before.inferenceCount,
    executionCount: after.executionCount - before.executionCount,
    // compute_infer of inference_stats counts requests; the runs are the sum over batch sizes.
    computeInfer: minus(after.computeInfer, before.computeInfer),
    batches,
  };
}

/** Figures derived from the counters of one window. */
export interface RunFigures {
  /** Rows per run. */
  readonly meanBatchSize: number;
  /** Mean compute time of one run, ms. */
  readonly meanRunMs: number;
  /** Fraction of the window the model instances spent computing (1.0 = one instance always busy). */
  readonly computeBusyFraction: number;
  /** Mean compute time of a run of `size` rows, ms, when there was one. */
  runMsAt(size: number): number | undefined;
}

export function runFigures(stats: ModelStats, windowSeconds: number): RunFigures {
  let runs = 0;
  let ns = 0;
  for (const duration of stats.batches.values()) {
    runs += duration.count;
    ns += duration.ns;
  }
  return {
    meanBatchSize: runs > 0 ? stats.inferenceCount / runs : Number.NaN,
    meanRunMs: runs > 0 ? ns / runs / 1e6 : Number.NaN,
    computeBusyFraction: ns / 1e9 / windowSeconds,
    runMsAt(size: number) {
      const duration = stats.batches.get(size);
      return duration && duration.count > 0 ? duration.ns / duration.count / 1e6 : undefined;
    },
  };
}

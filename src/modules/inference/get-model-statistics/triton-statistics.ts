import type { Duration, StatisticsSnapshot } from '../../../domain/inference/inference-statistics.js';
import type { VersionStatistics } from './get-model-statistics.handler.js';

/**
 * Triton's statistics response, `{model_stats: [...]}`: the JSON of `GET .../stats` and, field for
 * field, the `ModelStatisticsResponse` message of gRPC. Durations are in nanoseconds.
 */
export function toTritonStatistics(stats: VersionStatistics[]) {
  return { model_stats: stats.map(({ name, version, statistics }) => ({ name, version, ...statisticsJson(statistics) })) };
}

function statisticsJson(s: StatisticsSnapshot) {
  const none: Duration = { count: 0, ns: 0 };
  return {
    last_inference: s.lastInference,
    inference_count: s.inferenceCount,
    execution_count: s.executionCount,
    inference_stats: {
      success: s.success,
      fail: s.fail,
      queue: s.queue,
      compute_input: s.computeInput,
      compute_infer: s.computeInfer,
      compute_output: s.computeOutput,
      cache_hit: none,
      cache_miss: none,
    },
    batch_stats: s.batches.map((b) => ({ batch_size: b.batchSize, compute_input: b.computeInput, compute_infer: b.computeInfer, compute_output: b.computeOutput })),
    memory_usage: [],
  };
}

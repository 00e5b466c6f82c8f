import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeGaugeProvider, makeHistogramProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { AppConfig } from '../../../infra/config/app-config.js';
import { InferenceEngine } from '../../../domain/inference/inference-engine.port.js';
import type { ModelVersion } from '../../../domain/registry/model-version.js';
import { errorKindOf, FAILURE_REASONS } from '../../../domain/shared/domain-error.js';
import { ModelCatalog } from '../../../domain/registry/model-catalog.port.js';

/** The label of a model or version the server does not know: unknown names never make new series. */
const UNKNOWN_LABEL = '_unknown';

const MODEL_LABELS = ['model', 'version'] as const;
const VERSION_STATES = ['UNKNOWN', 'LOADING', 'READY', 'UNLOADING', 'UNAVAILABLE'] as const;
/** Seconds, from 100 µs to 10 s (a CPU model's run to a queue at its timeout). */
const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/** The metric providers (prom-client through @willsoto/nestjs-prometheus); names follow Prometheus' conventions. */
export const INFERENCE_METRIC_PROVIDERS = [
  makeCounterProvider({ name: 'inference_request_success_total', help: 'Inference requests answered successfully (Triton: nv_inference_request_success).', labelNames: MODEL_LABELS }),
  makeCounterProvider({
    name: 'inference_request_failure_total',
    help: 'Inference requests that failed, by reason: rejected (queue full, in-flight limit), timeout, cancelled, invalid, runtime, unavailable, not_found (Triton: nv_inference_request_failure).',
    labelNames: [...MODEL_LABELS, 'reason'],
  }),
  makeCounterProvider({ name: 'inference_count_total', help: 'Rows (samples) computed; a batch of 8 rows counts 8 (Triton: nv_inference_count).', labelNames: MODEL_LABELS }),
  makeCounterProvider({ name: 'inference_exec_count_total', help: 'Model executions (runs of a batch) (Triton: nv_inference_exec_count).', labelNames: MODEL_LABELS }),
  makeHistogramProvider({ name: 'inference_request_duration_seconds', help: 'From the request reaching the handler to its answer (Triton: nv_inference_request_duration_us, as a histogram).', labelNames: MODEL_LABELS, buckets: DURATION_BUCKETS }),
  makeHistogramProvider({ name: 'inference_queue_duration_seconds', help: "Time a request waited for its batch's run (Triton: nv_inference_queue_duration_us).", labelNames: MODEL_LABELS, buckets: DURATION_BUCKETS }),
  makeHistogramProvider({ name: 'inference_compute_duration_seconds', help: "The run of a request's batch, as the runtime measured it (Triton: nv_inference_compute_infer_duration_us).", labelNames: MODEL_LABELS, buckets: DURATION_BUCKETS }),
  makeHistogramProvider({ name: 'inference_batch_size', help: 'Rows per execution (Triton reports batch statistics only as sums).', labelNames: MODEL_LABELS, buckets: BATCH_SIZE_BUCKETS }),
  makeGaugeProvider({ name: 'inference_pending_requests', help: "Requests waiting in a version's queue (Triton: nv_inference_pending_request_count).", labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'model_version_state', help: 'One series per version and state: 1 for the state the version is in, 0 for the others.', labelNames: [...MODEL_LABELS, 'state'] }),
  makeGaugeProvider({ name: 'inference_workers', help: "A loaded version's worker processes (instances), busy or idle.", labelNames: [...MODEL_LABELS, 'state'] }),
  makeCounterProvider({ name: 'inference_worker_exits_total', help: 'Worker processes of a version that crashed or exited while serving, or were killed for a run past its time limit.', labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'inference_circuit_breaker_state', help: "A version's circuit breaker: 1 for its state (closed, open, half_open), 0 for the others.", labelNames: [...MODEL_LABELS, 'state'] }),
  makeGaugeProvider({ name: 'inference_concurrency_limit', help: "A version's in-flight request limit (max_inflight_requests, or where the adaptive limit stands); absent without one.", labelNames: MODEL_LABELS }),
  makeCounterProvider({ name: 'inference_worker_restarts_total', help: 'Dead worker processes replaced by a new one with the model reloaded.', labelNames: MODEL_LABELS }),
];

/**
 * What the inference path reports, with labels bounded by construction: a model or version label is
 * one the registry knows, else {@link UNKNOWN_LABEL}; a failure reason is one of a fixed set.
 */
@Injectable()
export class InferenceMetrics {
  private readonly enabled: boolean;
  /** What the pools' own counts were at the last scrape, by counter and pool. */
  private readonly followed = new Map<string, number>();

  constructor(
    config: AppConfig,
    private readonly registry: ModelCatalog,
    private readonly engine: InferenceEngine,
    @InjectMetric('inference_request_success_total') private readonly success: Counter,
    @InjectMetric('inference_request_failure_total') private readonly failure: Counter,
    @InjectMetric('inference_count_total') private readonly inferences: Counter,
    @InjectMetric('inference_exec_count_total') private readonly executions: Counter,
    @InjectMetric('inference_request_duration_seconds') private readonly requestDuration: Histogram,
    @InjectMetric('inference_queue_duration_seconds') private readonly queueDuration: Histogram,
    @InjectMetric('inference_compute_duration_seconds') private readonly computeDuration: Histogram,
    @InjectMetric('inference_batch_size') private readonly batchSize: Histogram,
    @InjectMetric('inference_pending_requests') private readonly pending: Gauge,
    @InjectMetric('model_version_state') private readonly versionState: Gauge,
    @InjectMetric('inference_workers') private readonly workers: Gauge,
    @InjectMetric('inference_worker_exits_total') private readonly workerExits: Counter,
    @InjectMetric('inference_worker_restarts_total') private readonly workerRestarts: Counter,
    @InjectMetric('inference_circuit_breaker_state') private readonly breaker: Gauge,
    @InjectMetric('inference_concurrency_limit') private readonly concurrencyLimit: Gauge,
  ) {
    this.enabled = config.ALLOW_METRICS;
  }

  requestSucceeded(model: string, version: number, durations: { readonly totalMs: number; readonly queueMicros: number; readonly computeMicros: number }): void {
    if (!this.enabled) return;
    const labels = { model, version: String(version) };
    this.success.inc(labels);
    this.requestDuration.observe(labels, durations.totalMs / 1000);
    this.queueDuration.observe(labels, durations.queueMicros / 1e6);
    this.computeDuration.observe(labels, durations.computeMicros / 1e6);
  }

  /** A generation that ended with its final response: a success, its duration the whole stream's. */
  generationSucceeded(model: string, version: number, totalMs: number): void {
    if (!this.enabled) return;
    const labels = { model, version: String(version) };
    this.success.inc(labels);
    this.requestDuration.observe(labels, totalMs / 1000);
  }

  /** A failed request; `version` when the version that was to serve it is known. */
  requestFailed(model: string, version: number | undefined, error: unknown): void {
    if (!this.enabled) return;
    this.failure.inc({ ...this.labelsOf(model, version), reason: errorKindOf(error).failureReason });
  }

  /** One execution of a batch of `rows` rows on a version the registry serves. */
  executed(model: string, version: number, rows: number): void {
    if (!this.enabled) return;
    const labels = { model, version: String(version) };
    this.executions.inc(labels);
    this.inferences.inc(labels, rows);
    this.batchSize.observe(labels, rows);
  }

  breakerState(model: string, version: number, state: 'closed' | 'open' | 'half_open'): void {
    if (!this.enabled) return;
    for (const each of ['closed', 'open', 'half_open'] as const) this.breaker.set({ model, version: String(version), state: each }, each === state ? 1 : 0);
  }

  concurrencyLimitChanged(model: string, version: number, limit: number): void {
    if (!this.enabled) return;
    this.concurrencyLimit.set({ model, version: String(version) }, limit);
  }

  /** Sets the gauges that describe the present (states, queues, workers): called before each scrape. */
  refresh(queued: (version: ModelVersion) => number | undefined): void {
    this.versionState.reset();
    this.pending.reset();
    this.workers.reset();
    const pools = new Map(this.engine.status().map((pool) => [pool.key.toString(), pool]));
    for (const model of this.registry.all()) {
      for (const version of model.versions) {
        const labels = { model: model.name, version: String(version.version) };
        for (const state of VERSION_STATES) this.versionState.set({ ...labels, state }, version.state === state ? 1 : 0);
        const waiting = queued(version);
        if (waiting !== undefined) this.pending.set(labels, waiting);
        if (version.isReady) {
          // Every series a READY version can have exists from its first scrape, at 0: rate() then sees its first failure.
          this.success.inc(labels, 0);
          for (const reason of FAILURE_REASONS) this.failure.inc({ ...labels, reason }, 0);
        }
        const pool = version.isReady ? pools.get(version.key.toString()) : undefined;
        if (pool) {
          this.workers.set({ ...labels, state: 'busy' }, pool.busy);
          this.workers.set({ ...labels, state: 'idle' }, Math.max(0, pool.instances - pool.busy));
          // The pool counts its losses and restarts; the counters follow by the difference since the last scrape.
          this.follow(this.workerExits, `exits ${pool.key}`, labels, pool.lostInstances);
          this.follow(this.workerRestarts, `restarts ${pool.key}`, labels, pool.restartedInstances);
        }
      }
    }
  }

  private follow(counter: Counter, key: string, labels: { model: string; version: string }, total: number): void {
    const counted = this.followed.get(key) ?? 0;
    counter.inc(labels, Math.max(0, total - counted));
    this.followed.set(key, Math.max(total, counted));
  }

  private labelsOf(model: string, version: number | undefined): { model: string; version: string } {
    const known = this.registry.find(model);
    if (!known) return { model: UNKNOWN_LABEL, version: UNKNOWN_LABEL };
    const versionKnown = version !== undefined && known.versions.some((v) => v.version === version);
    return { model, version: versionKnown ? String(version) : UNKNOWN_LABEL };
  }
}

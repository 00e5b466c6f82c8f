import { Injectable } from '@nestjs/common';
import { InjectMetric, makeCounterProvider, makeGaugeProvider, makeHistogramProvider } from '@willsoto/nestjs-prometheus';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { AppConfig } from '../../../infra/config/app-config.js';

const MODEL_LABELS = ['model', 'version'] as const;
/** Seconds, from 1 ms (a decode step of a small model) to 30 s (a first token behind a long queue). */
const TOKEN_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Why a generation was refused or ended early by the scheduler, from a fixed set. */
const GENERATION_REFUSAL_REASONS = ['too_long', 'queue_full', 'deadline', 'drained', 'invalid'] as const;
export type GenerationRefusalReason = (typeof GENERATION_REFUSAL_REASONS)[number];

export const GENERATION_METRIC_PROVIDERS = [
  makeHistogramProvider({ name: 'generation_time_to_first_token_seconds', help: "From a generation's arrival at the scheduler to its first token (queue and prefill).", labelNames: MODEL_LABELS, buckets: TOKEN_LATENCY_BUCKETS }),
  makeHistogramProvider({ name: 'generation_inter_token_latency_seconds', help: "Between two tokens of one sequence (a decode step, and any pause its slow reader caused).", labelNames: MODEL_LABELS, buckets: TOKEN_LATENCY_BUCKETS }),
  makeCounterProvider({ name: 'generation_prompt_tokens_total', help: 'Prompt tokens fed to generative models (prefill).', labelNames: MODEL_LABELS }),
  makeCounterProvider({ name: 'generation_output_tokens_total', help: 'Tokens generated.', labelNames: MODEL_LABELS }),
  makeCounterProvider({ name: 'generation_steps_total', help: 'Decode steps run (each one batched forward over every active sequence).', labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'generation_running_sequences', help: "Sequences in a generative version's running batch (paused ones included).", labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'generation_paused_sequences', help: 'Running sequences paused because their client has not read stream_buffer_tokens responses (slow readers): they keep their slots and are left out of the steps.', labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'generation_waiting_sequences', help: 'Sequences waiting for a slot or for KV cache.', labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'generation_kv_cache_used_bytes', help: 'KV cache the running sequences hold (positions fed so far).', labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'generation_kv_cache_reserved_bytes', help: "KV cache reserved by the running sequences (each its most), what admission counts against the budget.", labelNames: MODEL_LABELS }),
  makeGaugeProvider({ name: 'generation_kv_cache_capacity_bytes', help: "A generative version's KV-cache budget (kv_cache_bytes).", labelNames: MODEL_LABELS }),
  makeCounterProvider({
    name: 'generation_refusals_total',
    help: 'Generations refused or ended by the scheduler, by reason: too_long (prompt or KV cache past the limits), queue_full, deadline, drained (unload, shutdown), invalid. Sequences are never preempted.',
    labelNames: [...MODEL_LABELS, 'reason'],
  }),
];

/** What one generative version's scheduler holds now. */
export interface GenerationLoad {
  readonly model: string;
  readonly version: number;
  readonly running: number;
  readonly paused: number;
  readonly waiting: number;
  readonly kvCacheUsedBytes: number;
  readonly kvCacheReservedBytes: number;
  readonly kvCacheCapacityBytes: number;
}

/** What the generation path reports; labels are the registry's models and versions only. */
@Injectable()
export class GenerationMetrics {
  private readonly enabled: boolean;
  private source: () => readonly GenerationLoad[] = () => [];

  constructor(
    config: AppConfig,
    @InjectMetric('generation_time_to_first_token_seconds') private readonly firstToken: Histogram,
    @InjectMetric('generation_inter_token_latency_seconds') private readonly interToken: Histogram,
    @InjectMetric('generation_prompt_tokens_total') private readonly promptTokens: Counter,
    @InjectMetric('generation_output_tokens_total') private readonly outputTokens: Counter,
    @InjectMetric('generation_steps_total') private readonly steps: Counter,
    @InjectMetric('generation_running_sequences') private readonly running: Gauge,
    @InjectMetric('generation_paused_sequences') private readonly paused: Gauge,
    @InjectMetric('generation_waiting_sequences') private readonly waiting: Gauge,
    @InjectMetric('generation_kv_cache_used_bytes') private readonly kvUsed: Gauge,
    @InjectMetric('generation_kv_cache_reserved_bytes') private readonly kvReserved: Gauge,
    @InjectMetric('generation_kv_cache_capacity_bytes') private readonly kvCapacity: Gauge,
    @InjectMetric('generation_refusals_total') private readonly refusals: Counter,
  ) {
    this.enabled = config.ALLOW_METRICS;
  }

  /** Where the gauges are read from at each scrape (the generation schedulers). */
  follow(source: () => readonly GenerationLoad[]): void {
    this.source = source;
  }

  stepped(model: string, version: number, prefillTokens: number, generatedTokens: number): void {
    if (!this.enabled) return;
    const labels = { model, version: String(version) };
    this.steps.inc(labels);
    if (prefillTokens > 0) this.promptTokens.inc(labels, prefillTokens);
    if (generatedTokens > 0) this.outputTokens.inc(labels, generatedTokens);
  }

  timeToFirstToken(model: string, version: number, ms: number): void {
    if (this.enabled) this.firstToken.observe({ model, version: String(version) }, ms / 1000);
  }

  interTokenLatency(model: string, version: number, ms: number): void {
    if (this.enabled) this.interToken.observe({ model, version: String(version) }, ms / 1000);
  }

  refused(model: string, version: number, reason: GenerationRefusalReason): void {
    if (this.enabled) this.refusals.inc({ model, version: String(version), reason });
  }

  /** Sets the gauges from what the schedulers hold now: called before each scrape. */
  refresh(): void {
    if (!this.enabled) return;
    for (const gauge of [this.running, this.paused, this.waiting, this.kvUsed, this.kvReserved, this.kvCapacity]) gauge.reset();
    for (const load of this.source()) {
      const labels = { model: load.model, version: String(load.version) };
      this.running.set(labels, load.running);
      this.paused.set(labels, load.paused);
      this.waiting.set(labels, load.waiting);
      this.kvUsed.set(labels, load.kvCacheUsedBytes);
      this.kvReserved.set(labels, load.kvCacheReservedBytes);
      this.kvCapacity.set(labels, load.kvCacheCapacityBytes);
      for (const reason of GENERATION_REFUSAL_REASONS) this.refusals.inc({ ...labels, reason }, 0);
    }
  }
}

/** Latencies kept per version and step for the p99: enough for a stable p99, bounded in memory. */
const MAX_LATENCY_SAMPLES = 4096;

/** What one version did during the current step of a rollout. */
export interface VersionFigures {
  readonly version: number;
  readonly requests: number;
  readonly errors: number;
  /** errors / requests (0 without requests). */
  readonly errorRate: number;
  /** Milliseconds; undefined without requests. */
  readonly p99Ms?: number;
  /** Mean divergence of a shadow's outputs from the answers the client got; undefined unless mirrored. */
  readonly meanDivergence?: number;
}

/** What one server's window holds, to be summed with the other servers' (a rollout judged once for replicas). */
export interface WindowSample {
  readonly version: number;
  readonly requests: number;
  readonly errors: number;
  /** The most recent latencies (ms), at most MAX_LATENCY_SAMPLES. */
  readonly latencies: readonly number[];
  readonly divergenceSum: number;
  readonly divergenceCount: number;
}

/**
 * A version's outcomes since the rollout's step began: requests, server-side failures, latencies
 * (a ring of the most recent ones) and, for a shadow, how far its outputs diverged.
 */
export class VersionWindow {
  private requests = 0;
  private errors = 0;
  private readonly latencies: number[] = [];
  private next = 0;
  private divergenceSum = 0;
  private divergenceCount = 0;

  constructor(readonly version: number) {}

  record(outcome: { readonly ok: boolean; readonly latencyMs: number; readonly divergence?: number }): void {
    this.requests++;
    if (!outcome.ok) this.errors++;
    if (this.latencies.length < MAX_LATENCY_SAMPLES) this.latencies.push(outcome.latencyMs);
    else this.latencies[this.next++ % MAX_LATENCY_SAMPLES] = outcome.latencyMs;
    if (outcome.divergence !== undefined) {
      this.divergenceSum += outcome.divergence;
      this.divergenceCount++;
    }
  }

  /** What this window holds, for another server to add to its own (absorb). */
  sample(): WindowSample {
    return { version: this.version, requests: this.requests, errors: this.errors, latencies: [...this.latencies], divergenceSum: this.divergenceSum, divergenceCount: this.divergenceCount };
  }

  /** Adds what another server's window of the same version and step holds. */
  absorb(sample: WindowSample): void {
    this.requests += sample.requests;
    this.errors += sample.errors;
    for (const latency of sample.latencies) {
      if (this.latencies.length < MAX_LATENCY_SAMPLES) this.latencies.push(latency);
      else this.latencies[this.next++ % MAX_LATENCY_SAMPLES] = latency;
    }
    this.divergenceSum += sample.divergenceSum;
    this.divergenceCount += sample.divergenceCount;
  }

  figures(): VersionFigures {
    return {
      version: this.version,
      requests: this.requests,
      errors: this.errors,
      errorRate: this.requests === 0 ? 0 : this.errors / this.requests,
      p99Ms: percentile(this.latencies, 0.99),
      meanDivergence: this.divergenceCount === 0 ? undefined : this.divergenceSum / this.divergenceCount,
    };
  }
}

function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

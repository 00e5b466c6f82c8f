/**
 * How many requests a model version holds at once (queued and running). A request over the limit
 * is refused at once, before it queues: load is shed where it is cheapest.
 *
 * Written here rather than taken from a library: npm has no kept port of Netflix's
 * concurrency-limits, and the fixed cap and the gradient below are a few lines of arithmetic that
 * must sit in the request path without a promise of their own.
 */
export interface ConcurrencyLimit {
  /** The current limit (fixed, or where the adaptive one stands). */
  readonly limit: number;
  readonly inFlight: number;
  /** A permit for one request, or undefined when `inFlight` has reached `limit`. */
  tryAcquire(): Permit | undefined;
}

export interface Permit {
  /** The request was answered; its latency (queue and compute) is a sample for an adaptive limit. */
  succeeded(latencyMs: number): void;
  /** The request timed out or was refused for load downstream: a sign of overload. */
  dropped(): void;
  /** The request ended for a reason that says nothing about load (bad input, a cancel, a failed run). */
  ignored(): void;
}

/** A fixed cap. */
export class FixedConcurrencyLimit implements ConcurrencyLimit {
  inFlight = 0;

  constructor(readonly limit: number) {}

  tryAcquire(): Permit | undefined {
    if (this.inFlight >= this.limit) return undefined;
    this.inFlight++;
    const release = once(() => this.inFlight--);
    return { succeeded: release, dropped: release, ignored: release };
  }
}

export interface GradientSettings {
  /** The limit it starts at. */
  readonly initial: number;
  /** The floor: for a batching model, a batch per instance (below it, shedding costs throughput and saves no latency). */
  readonly min: number;
  /** The ceiling (the model's max in-flight requests). */
  readonly max: number;
  /** How far above its baseline latency may rise before the limit shrinks (1.5: 50% more). */
  readonly tolerance: number;
  /** The weight of each new estimate in the limit (0..1): smaller moves slower and steadier. */
  readonly smoothing: number;
  /** Requests whose mean latency makes one sample: single latencies are too noisy under batching. */
  readonly windowSamples: number;
  /** Samples the baseline averages over. */
  readonly longWindow: number;
}

export const DEFAULT_GRADIENT: Omit<GradientSettings, 'max'> = {
  initial: 16,
  min: 1,
  tolerance: 1.5,
  smoothing: 0.2,
  windowSamples: 16,
  longWindow: 40,
};

/**
 * Netflix's Gradient2 limiter: the limit follows the ratio of a long-run latency baseline to the
 * recent latency, judged once per window of `windowSamples` answered requests on their mean
 * latency. While recent latency stays within `tolerance` of the baseline the limit grows by a
 * queue allowance (√limit) per window; when it rises past it (requests queue behind a saturated
 * model), the limit shrinks in proportion, down to half per window, so the excess is refused
 * instead of waiting. A drop (a timeout, a refusal downstream) cuts it by 10% (multiplicative
 * decrease). A window in which fewer than half the permits were in use does not move the limit:
 * an idle server says nothing about how much it can take. A baseline far above recent latency
 * decays, so the limit recovers after a slow period ends.
 */
export class GradientConcurrencyLimit implements ConcurrencyLimit {
  inFlight = 0;
  private estimate: number;
  private longLatencyMs = 0;
  private samples = 0;
  private window = { latencySumMs: 0, requests: 0, mostInFlight: 0 };

  constructor(private readonly settings: GradientSettings) {
    this.estimate = clamp(settings.initial, settings.min, settings.max);
  }

  get limit(): number {
    return Math.floor(this.estimate);
  }

  tryAcquire(): Permit | undefined {
    if (this.inFlight >= this.limit) return undefined;
    this.inFlight++;
    const inFlightAtStart = this.inFlight;
    let ended = false;
    // A permit ends once, whichever way: a second end neither releases nor samples again.
    const end = (after?: () => void) => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      after?.();
    };
    return {
      succeeded: (latencyMs) => end(() => this.sample(latencyMs, inFlightAtStart)),
      dropped: () => end(() => (this.estimate = clamp(this.estimate * 0.9, this.settings.min, this.settings.max))),
      ignored: () => end(),
    };
  }

  private sample(latencyMs: number, inFlight: number): void {
    const window = this.window;
    window.latencySumMs += latencyMs;
    window.requests++;
    window.mostInFlight = Math.max(window.mostInFlight, inFlight);
    if (window.requests < this.settings.windowSamples) return;
    this.window = { latencySumMs: 0, requests: 0, mostInFlight: 0 };
    const { longWindow, tolerance, smoothing, min, max } = this.settings;
    const recentMs = window.latencySumMs / window.requests;
    this.samples++;
    this.longLatencyMs = average(this.longLatencyMs, recentMs, Math.min(this.samples, longWindow));
    if (this.longLatencyMs / recentMs > 2) this.longLatencyMs *= 0.95;
    if (window.mostInFlight < this.estimate / 2) return;
    const gradient = clamp((tolerance * this.longLatencyMs) / recentMs, 0.5, 1);
    const next = this.estimate * gradient + Math.sqrt(this.estimate);
    this.estimate = clamp(this.estimate * (1 - smoothing) + next * smoothing, min, max);
  }
}

/** An exponential moving average over about `window` samples (a plain mean while fewer have come). */
function average(current: number, sample: number, window: number): number {
  return current + (sample - current) / window;
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

function once<A extends unknown[]>(action: (...args: A) => void): (...args: A) => void {
  let done = false;
  return (...args: A) => {
    if (done) return;
    done = true;
    action(...args);
  };
}

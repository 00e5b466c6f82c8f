import type { VersionFigures } from './version-window.js';

/** What a canary must keep to progress (a plan's `slo`). */
export interface SloGuard {
  /** Largest share of the canary's requests that may fail on the server side (runtime error, timeout). */
  readonly maxErrorRate: number;
  /** Largest canary p99 latency as a multiple of the stable version's p99 over the same step. */
  readonly maxP99Ratio?: number;
  /** Largest mean divergence of the shadow's outputs from the stable answers. */
  readonly maxDivergence?: number;
}

export type SloVerdict = { readonly ok: true } | { readonly ok: false; readonly breach: string };

/**
 * The guard applied to one step's figures. Latency is compared only when both versions served
 * requests in the step; divergence only when a shadow was mirrored.
 */
export function judge(slo: SloGuard, canary: VersionFigures | undefined, stable: VersionFigures, shadow?: VersionFigures): SloVerdict {
  if (canary && canary.errorRate > slo.maxErrorRate) {
    return { ok: false, breach: `error rate ${round(canary.errorRate)} > ${slo.maxErrorRate} (${canary.errors} of ${canary.requests} requests failed)` };
  }
  if (canary && slo.maxP99Ratio !== undefined && canary.p99Ms !== undefined && stable.p99Ms !== undefined && stable.p99Ms > 0) {
    const ratio = canary.p99Ms / stable.p99Ms;
    if (ratio > slo.maxP99Ratio) {
      return { ok: false, breach: `p99 ${round(canary.p99Ms)} ms is ${round(ratio)}x the stable version's ${round(stable.p99Ms)} ms (> ${slo.maxP99Ratio}x)` };
    }
  }
  if (shadow && slo.maxDivergence !== undefined && shadow.meanDivergence !== undefined && shadow.meanDivergence > slo.maxDivergence) {
    return { ok: false, breach: `shadow version ${shadow.version} diverges by ${round(shadow.meanDivergence)} on average (> ${slo.maxDivergence})` };
  }
  return { ok: true };
}

/**
 * Whether the canary's step is already lost: it failed more requests than the SLO allows over
 * `minRequests` (the fewest the step is judged on) and over the requests it has seen so far, so a
 * broken canary is rolled back without waiting for the step to end, while a compliant one that
 * has seen many requests is not.
 */
export function errorBudgetSpent(slo: SloGuard, canary: VersionFigures, minRequests: number): boolean {
  return canary.errors > slo.maxErrorRate * Math.max(minRequests, canary.requests);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

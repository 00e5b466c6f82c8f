import { Rollout, type ProgressivePlan, type RolloutSpec } from '../../../src/domain/rollout/rollout.js';
import type { SloGuard } from '../../../src/domain/rollout/slo-guard.js';

/** When every rollout of the unit tests starts; later instants are given as seconds after it. */
export const T0 = new Date('2024-05-06T07:08:09.000Z');

/** `seconds` after {@link T0}. */
export function at(seconds: number): Date {
  return new Date(T0.getTime() + seconds * 1000);
}

/** A seeded uniform PRNG in [0, 1) (mulberry32): the same draws on every run. */
export function seededRandom(seed = 42): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** A random source that fails the test when drawn from: routing by a sticky key must not use it. */
export const noRandom = (): number => {
  throw new Error('routing drew a random number although the request carries a sticky key');
};

/** Request headers by lower-case name, as the transports give them to the rollout. */
export function headers(values: Record<string, string> = {}): (name: string) => string | undefined {
  return (name) => values[name];
}

export const NO_HEADERS = headers();

/** Stable 1 only; override what the test is about. */
export function aSpec(overrides: Partial<RolloutSpec> = {}): RolloutSpec {
  return { stable: 1, rules: [], ...overrides };
}

export function anSlo(overrides: Partial<SloGuard> = {}): SloGuard {
  return { maxErrorRate: 0.05, ...overrides };
}

/** Steps 10 -> 50 -> 100, 100 requests and 60 s per step, at most 5% errors. */
export function aPlan(overrides: Partial<ProgressivePlan> = {}): ProgressivePlan {
  return { steps: [10, 50, 100], minRequests: 100, minDwellSeconds: 60, slo: anSlo(), ...overrides };
}

/** Stable 1, canary 2 under {@link aPlan}. */
export function aPlannedSpec(plan: Partial<ProgressivePlan> = {}, overrides: Partial<RolloutSpec> = {}): RolloutSpec {
  return aSpec({ canary: { version: 2, weight: 0 }, plan: aPlan(plan), ...overrides });
}

const everyVersionReady = (): boolean => true;

/** A rollout of model 'resnet' started at {@link T0}, every version READY; its start event already pulled. */
export function aRollout(spec: RolloutSpec = aSpec(), isReady: (version: number) => boolean = everyVersionReady): Rollout {
  const rollout = Rollout.start('resnet', spec, isReady, T0);
  rollout.pullDomainEvents();
  return rollout;
}

/** Records `count` outcomes of `version` (ok unless `errors` of them, the first ones, failed). */
export function record(rollout: Rollout, version: number, count: number, outcome: { errors?: number; latencyMs?: number; divergence?: number } = {}): void {
  for (let i = 0; i < count; i++) {
    rollout.recordOutcome(version, { ok: i >= (outcome.errors ?? 0), latencyMs: outcome.latencyMs ?? 10, divergence: outcome.divergence });
  }
}

/** How many of `draws` routings (seeded random, no headers) the canary version took. */
export function canaryShare(rollout: Rollout, draws: number, seed = 7): number {
  const canary = rollout.spec.canary!.version;
  const random = seededRandom(seed);
  let hits = 0;
  for (let i = 0; i < draws; i++) if (rollout.route(NO_HEADERS, random)?.version === canary) hits++;
  return hits / draws;
}

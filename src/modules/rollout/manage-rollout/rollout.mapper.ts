import type { Rollout, RolloutSpec } from '../../../domain/rollout/rollout.js';
import type { VersionFigures } from '../../../domain/rollout/version-window.js';
import type { RolloutDocument, RolloutView } from './rollout.schemas.js';

/** The rollout context's wire mapping (snake_case, versions as strings): domain objects never go on the wire themselves. */

export function toRolloutSpec(document: RolloutDocument): RolloutSpec {
  const { plan } = document;
  return {
    stable: document.stable,
    canary: document.canary,
    stickyHeader: document.sticky_header,
    rules: document.rules,
    shadow: document.shadow,
    plan: plan && {
      steps: plan.steps,
      minRequests: plan.min_requests,
      minDwellSeconds: plan.min_dwell_seconds,
      slo: { maxErrorRate: plan.slo.max_error_rate, maxP99Ratio: plan.slo.max_p99_ratio, maxDivergence: plan.slo.max_divergence },
    },
  };
}

export function toRolloutView(rollout: Rollout): RolloutView {
  const { spec } = rollout;
  return {
    model: rollout.modelName,
    phase: rollout.phase,
    stable: String(spec.stable),
    canary: spec.canary && { version: String(spec.canary.version), weight: rollout.canaryWeight },
    sticky_header: spec.stickyHeader,
    rules: spec.rules.map((rule) => ({ header: rule.header, equals: rule.equals, version: String(rule.version) })),
    shadow: spec.shadow && { version: String(spec.shadow.version), percent: spec.shadow.percent },
    plan: spec.plan && {
      steps: [...spec.plan.steps],
      min_requests: spec.plan.minRequests,
      min_dwell_seconds: spec.plan.minDwellSeconds,
      slo: { max_error_rate: spec.plan.slo.maxErrorRate, max_p99_ratio: spec.plan.slo.maxP99Ratio, max_divergence: spec.plan.slo.maxDivergence },
    },
    step: rollout.step,
    figures: rollout.figures().map(toFiguresView),
    history: rollout.history.map((decision) => ({
      at: decision.at,
      action: decision.action,
      step: decision.step,
      weight: decision.weight,
      reason: decision.reason,
      figures: decision.figures?.map(toFiguresView),
    })),
  };
}

function toFiguresView(figures: VersionFigures): RolloutView['figures'][number] {
  return {
    version: figures.version,
    requests: figures.requests,
    errors: figures.errors,
    error_rate: figures.errorRate,
    p99_ms: figures.p99Ms,
    mean_divergence: figures.meanDivergence,
  };
}

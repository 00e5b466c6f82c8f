import { AggregateRoot } from '../shared/aggregate-root.js';
import { DomainError } from '../shared/domain-error.js';
import type { RolloutEvent } from './rollout-events.js';
import { errorBudgetSpent, judge, type SloGuard } from './slo-guard.js';
import { bucketOfKey, bucketOfRandom, inShare } from './traffic-split.js';
import { VersionWindow, type VersionFigures, type WindowSample } from './version-window.js';

interface CanarySplit {
  readonly version: number;
  /** Percent of the requests not matched by a rule (0-100). */
  readonly weight: number;
}

/** Requests whose header `header` (lower case) equals `equals` go to `version`; the first matching rule wins. */
interface HeaderRule {
  readonly header: string;
  readonly equals: string;
  readonly version: number;
}

interface ShadowMirror {
  readonly version: number;
  /** Percent of the requests mirrored (0-100). */
  readonly percent: number;
}

/** Canary weights to walk through, each held until the step has enough requests and time, guarded by the SLO. */
export interface ProgressivePlan {
  readonly steps: readonly number[];
  readonly minRequests: number;
  readonly minDwellSeconds: number;
  readonly slo: SloGuard;
}

export interface RolloutSpec {
  readonly stable: number;
  readonly canary?: CanarySplit;
  /** A request header whose value pins a client to one side of the split (lower case). */
  readonly stickyHeader?: string;
  readonly rules: readonly HeaderRule[];
  readonly shadow?: ShadowMirror;
  readonly plan?: ProgressivePlan;
}

/**
 * ACTIVE: the split, rules and shadow apply. PROMOTED: the canary became the stable version and
 * takes every request. ROLLED_BACK (by the SLO guard) and ABORTED (by an operator): every request
 * goes to the stable version. STOPPED: the stable version itself became unavailable, so the rollout
 * routes nothing and the model's default version serves.
 */
export type RolloutPhase = 'ACTIVE' | 'PROMOTED' | 'ROLLED_BACK' | 'ABORTED' | 'STOPPED';

export type DecisionAction = 'started' | 'advanced' | 'promoted' | 'rolled_back' | 'aborted' | 'version_removed' | 'stopped';

/** One entry of a rollout's history: what was decided, when, why, on which figures. */
export interface RolloutDecision {
  readonly at: string;
  readonly action: DecisionAction;
  readonly step?: number;
  readonly weight?: number;
  readonly reason: string;
  readonly figures?: readonly VersionFigures[];
}

/** Everything a rollout needs to resume after a restart (the step's figures start again from zero). */
export interface RolloutSnapshot {
  readonly modelName: string;
  readonly spec: RolloutSpec;
  readonly phase: RolloutPhase;
  readonly step: number;
  readonly stepStartedAt: string;
  readonly history: readonly RolloutDecision[];
}

/**
 * What one server counted of a rollout's current step, for the server that judges the plan for
 * every replica to add up. `step` tells which step it is (a server that has not followed a
 * decision yet still counts the step before).
 */
export interface RolloutSample {
  readonly step: string;
  readonly versions: readonly WindowSample[];
}

export interface RouteChoice {
  readonly version: number;
  /** A version to mirror the request to, its answer discarded. */
  readonly shadow?: number;
}

export interface RequestOutcome {
  /** False for a server-side failure (runtime error, timeout); a client's bad request is not the version's fault. */
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly divergence?: number;
}

/** Entries kept in a rollout's history (the oldest are dropped past it). */
const MAX_HISTORY = 100;

/**
 * Bounds of a rollout's lists: the rules are tried in order for every request that names no
 * version (100,000 rules made each such request 4x slower), and a plan's steps are walked one by one.
 */
export const ROLLOUT_LIMITS = {
  maxRules: 64,
  maxSteps: 32,
  /** Characters of a rule's `equals` value (a header value). */
  maxRuleValueLength: 1024,
} as const;

/**
 * A model's rollout: which version serves each request that names none. Routing is a pure function
 * of the request's headers, the rollout's state and (without a sticky key) a random draw. The
 * progressive plan moves the canary through its steps from the real outcomes of each version,
 * rolling back by itself when the SLO guard is breached.
 */
export class Rollout extends AggregateRoot<RolloutEvent> {
  private windows = new Map<number, VersionWindow>();

  private constructor(
    readonly modelName: string,
    private specValue: RolloutSpec,
    private phaseValue: RolloutPhase,
    private stepValue: number,
    private stepStartedAt: Date,
    private readonly decisions: RolloutDecision[],
  ) {
    super();
    this.resetWindows();
  }

  /** A new rollout; every version it names must be READY (`isReady`). */
  static start(modelName: string, spec: RolloutSpec, isReady: (version: number) => boolean, now: Date): Rollout {
    checkSpec(spec);
    const named = [spec.stable, spec.canary?.version, spec.shadow?.version, ...spec.rules.map((rule) => rule.version)];
    const notReady = named.find((version) => version !== undefined && !isReady(version));
    if (notReady !== undefined) {
      throw new DomainError('ROLLOUT.VERSION_NOT_READY', `version ${notReady} of model '${modelName}' is not READY: load it before routing traffic to it`);
    }
    const rollout = new Rollout(modelName, spec, 'ACTIVE', 0, now, []);
    rollout.decide(now, 'started', describeStart(spec), { step: spec.plan ? 0 : undefined, weight: rollout.canaryWeight });
    rollout.record({ type: 'RolloutStarted', occurredAt: now, modelName, stable: spec.stable, canary: spec.canary?.version, weight: rollout.canaryWeight });
    return rollout;
  }

  /** A saved rollout as it was; throws when the snapshot is not one this code wrote. */
  static restore(snapshot: RolloutSnapshot): Rollout {
    const phases: readonly RolloutPhase[] = ['ACTIVE', 'PROMOTED', 'ROLLED_BACK', 'ABORTED', 'STOPPED'];
    const spec = snapshot.spec;
    const stepOk = !spec?.plan || (Number.isInteger(snapshot.step) && snapshot.step >= 0 && snapshot.step < spec.plan.steps.length);
    const startedOk = !Number.isNaN(new Date(snapshot.stepStartedAt).getTime());
    if (!spec || !Number.isInteger(spec.stable) || !Array.isArray(spec.rules) || !phases.includes(snapshot.phase) || !stepOk || !startedOk || !Array.isArray(snapshot.history)) {
      throw new DomainError('ROLLOUT.INVALID_SPEC', `the saved rollout of '${snapshot.modelName}' is not a rollout this server wrote`);
    }
    checkSpec(spec);
    return new Rollout(snapshot.modelName, snapshot.spec, snapshot.phase, snapshot.step, new Date(snapshot.stepStartedAt), [...snapshot.history]);
  }

  get spec(): RolloutSpec {
    return this.specValue;
  }

  get phase(): RolloutPhase {
    return this.phaseValue;
  }

  get step(): number | undefined {
    return this.specValue.plan && this.phaseValue === 'ACTIVE' ? this.stepValue : undefined;
  }

  get history(): readonly RolloutDecision[] {
    return this.decisions;
  }

  /** The canary's current share: the plan's step when there is a plan, else the declared weight. */
  get canaryWeight(): number {
    const { canary, plan } = this.specValue;
    if (!canary || this.phaseValue !== 'ACTIVE') return 0;
    return plan ? plan.steps[this.stepValue] : canary.weight;
  }

  /** The version for a request that names none, or undefined when the rollout routes nothing (STOPPED). */
  route(header: (name: string) => string | undefined, random: () => number): RouteChoice | undefined {
    const spec = this.specValue;
    if (this.phaseValue === 'STOPPED') return undefined;
    if (this.phaseValue !== 'ACTIVE') return { version: spec.stable };
    const key = spec.stickyHeader ? header(spec.stickyHeader) : undefined;
    const rule = spec.rules.find((r) => header(r.header) === r.equals);
    let version = spec.stable;
    if (rule) version = rule.version;
    else if (spec.canary) {
      const bucket = key !== undefined ? bucketOfKey(key, 'canary') : bucketOfRandom(random());
      if (inShare(bucket, this.canaryWeight)) version = spec.canary.version;
    }
    const shadow = spec.shadow;
    if (!shadow || shadow.version === version) return { version };
    const bucket = key !== undefined ? bucketOfKey(key, 'shadow') : bucketOfRandom(random());
    return inShare(bucket, shadow.percent) ? { version, shadow: shadow.version } : { version };
  }

  /** Counts an outcome of `version` in the current step (versions the rollout does not watch are ignored). */
  recordOutcome(version: number, outcome: RequestOutcome): void {
    this.windows.get(version)?.record(outcome);
  }

  figures(): VersionFigures[] {
    return [...this.windows.values()].map((window) => window.figures());
  }

  /** What this server counted of the current step (see RolloutSample). */
  sample(): RolloutSample {
    return { step: this.stepKey, versions: [...this.windows.values()].map((window) => window.sample()) };
  }

  /** Names the current step: the same on every server that follows the same stored rollout. */
  private get stepKey(): string {
    return `${this.phaseValue}/${this.stepValue}/${this.stepStartedAt.toISOString()}`;
  }

  /**
   * The progressive plan's step decision: roll back on a breach of the SLO guard, advance when the
   * step has its requests and dwell time and the guard holds, promote after the last step. Judged
   * on this server's figures plus what `others` (the other replicas) counted of the same step.
   * Returns the decision taken, or undefined while the step goes on.
   */
  evaluate(now: Date, others: readonly RolloutSample[] = []): RolloutDecision | undefined {
    const { plan, canary, shadow, stable } = this.specValue;
    if (this.phaseValue !== 'ACTIVE' || !plan || !canary) return undefined;
    const windows = new Map([...this.windows].map(([version, window]) => {
      const summed = new VersionWindow(version);
      summed.absorb(window.sample());
      for (const other of others.filter((o) => o.step === this.stepKey)) {
        const theirs = other.versions.find((v) => v.version === version);
        if (theirs) summed.absorb(theirs);
      }
      return [version, summed] as const;
    }));
    const canaryFigures = windows.get(canary.version)!.figures();
    const stableFigures = windows.get(stable)!.figures();
    const shadowFigures = shadow ? windows.get(shadow.version)?.figures() : undefined;
    const figures = [...windows.values()].map((window) => window.figures());
    if (errorBudgetSpent(plan.slo, canaryFigures, plan.minRequests)) {
      const over = Math.max(plan.minRequests, canaryFigures.requests);
      return this.rollBack(now, `error budget of the step spent: ${canaryFigures.errors} failed requests > ${plan.slo.maxErrorRate} x ${over}`, figures);
    }
    const dwellSeconds = (now.getTime() - this.stepStartedAt.getTime()) / 1000;
    if (canaryFigures.requests < plan.minRequests || dwellSeconds < plan.minDwellSeconds) return undefined;
    const verdict = judge(plan.slo, canaryFigures, stableFigures, shadowFigures);
    if (!verdict.ok) return this.rollBack(now, `SLO breached at ${this.canaryWeight}%: ${verdict.breach}`, figures);
    if (this.stepValue === plan.steps.length - 1) return this.promoteNow(now, `the last step (${this.canaryWeight}%) held the SLO`, figures);
    const from = this.canaryWeight;
    this.stepValue++;
    this.stepStartedAt = now;
    this.resetWindows();
    const decision = this.decide(now, 'advanced', `step ${this.stepValue - 1} (${from}%) held the SLO over ${canaryFigures.requests} requests and ${Math.round(dwellSeconds)} s`, {
      step: this.stepValue,
      weight: this.canaryWeight,
      figures,
    });
    this.record({ type: 'RolloutStepAdvanced', occurredAt: now, modelName: this.modelName, step: this.stepValue, weight: this.canaryWeight });
    return decision;
  }

  /** An operator's promote: the canary becomes the stable version and takes every request. */
  promote(now: Date): RolloutDecision {
    if (this.phaseValue !== 'ACTIVE' || !this.specValue.canary) {
      throw new DomainError('ROLLOUT.INVALID_TRANSITION', `the rollout of model '${this.modelName}' has no canary to promote (it is ${this.phaseValue})`);
    }
    return this.promoteNow(now, 'promoted by an operator', this.figures());
  }

  /** An operator's abort: every request goes back to the stable version. */
  abort(now: Date): RolloutDecision {
    if (this.phaseValue !== 'ACTIVE') {
      throw new DomainError('ROLLOUT.INVALID_TRANSITION', `the rollout of model '${this.modelName}' is ${this.phaseValue}, not in progress`);
    }
    this.phaseValue = 'ABORTED';
    const decision = this.decide(now, 'aborted', 'aborted by an operator: every request goes to the stable version', { figures: this.figures() });
    this.record({ type: 'RolloutRolledBack', occurredAt: now, modelName: this.modelName, stable: this.specValue.stable, reason: decision.reason, figures: decision.figures ?? [] });
    return decision;
  }

  /**
   * A version became unavailable: routing stops using it at once. A canary or shadow is dropped
   * (and a plan ends, rolled back); rules naming it are dropped; losing the stable version stops
   * the rollout. Returns the decision, or undefined when the rollout did not use the version.
   */
  versionUnavailable(version: number, reason: string, now: Date): RolloutDecision | undefined {
    if (this.phaseValue === 'STOPPED') return undefined;
    const spec = this.specValue;
    if (version === spec.stable) {
      this.phaseValue = 'STOPPED';
      return this.decide(now, 'stopped', `the stable version ${version} became unavailable (${reason}): the model's default version serves`);
    }
    if (this.phaseValue !== 'ACTIVE') return undefined;
    const usesVersion = spec.canary?.version === version || spec.shadow?.version === version || spec.rules.some((rule) => rule.version === version);
    if (!usesVersion) return undefined;
    const wasCanary = spec.canary?.version === version;
    this.specValue = {
      ...spec,
      canary: wasCanary ? undefined : spec.canary,
      plan: wasCanary ? undefined : spec.plan,
      shadow: spec.shadow?.version === version ? undefined : spec.shadow,
      rules: spec.rules.filter((rule) => rule.version !== version),
    };
    const decision = this.decide(now, 'version_removed', `version ${version} became unavailable (${reason}) and was taken out of routing`, { figures: this.figures() });
    if (wasCanary && spec.plan) {
      this.phaseValue = 'ROLLED_BACK';
      this.record({ type: 'RolloutRolledBack', occurredAt: now, modelName: this.modelName, stable: spec.stable, reason: decision.reason, figures: decision.figures ?? [] });
    }
    this.resetWindows();
    return decision;
  }

  /**
   * A version's circuit breaker opened: a canary is rolled back, a shadow or a rule's version leaves
   * routing, as if it had become unavailable. The stable version stays: its breaker sheds its load
   * for a moment, and there is nothing safer to route to.
   */
  versionFailing(version: number, reason: string, now: Date): RolloutDecision | undefined {
    if (version === this.specValue.stable) return undefined;
    return this.versionUnavailable(version, reason, now);
  }

  snapshot(): RolloutSnapshot {
    return {
      modelName: this.modelName,
      spec: this.specValue,
      phase: this.phaseValue,
      step: this.stepValue,
      stepStartedAt: this.stepStartedAt.toISOString(),
      history: [...this.decisions],
    };
  }

  private rollBack(now: Date, reason: string, figures: VersionFigures[]): RolloutDecision {
    this.phaseValue = 'ROLLED_BACK';
    const decision = this.decide(now, 'rolled_back', `${reason}; every request goes to the stable version ${this.specValue.stable}`, { step: this.stepValue, weight: this.specValue.plan?.steps[this.stepValue], figures });
    this.record({ type: 'RolloutRolledBack', occurredAt: now, modelName: this.modelName, stable: this.specValue.stable, reason: decision.reason, figures });
    return decision;
  }

  private promoteNow(now: Date, reason: string, figures: VersionFigures[]): RolloutDecision {
    const spec = this.specValue;
    const promoted = spec.canary!.version;
    const previous = spec.stable;
    this.specValue = { stable: promoted, rules: [], stickyHeader: spec.stickyHeader };
    this.phaseValue = 'PROMOTED';
    this.resetWindows();
    const decision = this.decide(now, 'promoted', `${reason}: version ${promoted} replaces ${previous} as the stable version`, { figures });
    this.record({ type: 'RolloutPromoted', occurredAt: now, modelName: this.modelName, from: previous, to: promoted });
    return decision;
  }

  private decide(now: Date, action: DecisionAction, reason: string, extra: Partial<Pick<RolloutDecision, 'step' | 'weight' | 'figures'>> = {}): RolloutDecision {
    const decision: RolloutDecision = { at: now.toISOString(), action, reason, ...definedOnly(extra) };
    this.decisions.push(decision);
    if (this.decisions.length > MAX_HISTORY) this.decisions.splice(0, this.decisions.length - MAX_HISTORY);
    return decision;
  }

  private resetWindows(): void {
    const spec = this.specValue;
    const watched = [spec.stable, spec.canary?.version, spec.shadow?.version, ...spec.rules.map((rule) => rule.version)];
    this.windows = new Map(watched.filter((v): v is number => v !== undefined).map((v) => [v, new VersionWindow(v)]));
  }
}

function checkSpec(spec: RolloutSpec): void {
  const invalid = (message: string) => new DomainError('ROLLOUT.INVALID_SPEC', message);
  const { stable, canary, shadow, plan, rules } = spec;
  if (rules.length > ROLLOUT_LIMITS.maxRules) throw invalid(`rules has ${rules.length} entries, more than the ${ROLLOUT_LIMITS.maxRules} allowed`);
  const longValue = rules.findIndex((rule) => rule.equals.length > ROLLOUT_LIMITS.maxRuleValueLength);
  if (longValue >= 0) throw invalid(`rules[${longValue}].equals is longer than ${ROLLOUT_LIMITS.maxRuleValueLength} characters`);
  if (plan && plan.steps.length > ROLLOUT_LIMITS.maxSteps) throw invalid(`plan.steps has ${plan.steps.length} entries, more than the ${ROLLOUT_LIMITS.maxSteps} allowed`);
  if (canary) {
    if (canary.version === stable) throw invalid(`canary.version ${canary.version} is the stable version`);
    if (!(canary.weight >= 0 && canary.weight <= 100)) throw invalid(`canary.weight ${canary.weight} is not between 0 and 100`);
  }
  if (shadow) {
    if (shadow.version === stable) throw invalid(`shadow.version ${shadow.version} is the stable version: mirroring it to itself measures nothing`);
    if (!(shadow.percent >= 0 && shadow.percent <= 100)) throw invalid(`shadow.percent ${shadow.percent} is not between 0 and 100`);
  }
  if (plan) {
    if (!canary) throw invalid('plan needs a canary to move through its steps');
    if (plan.steps.length === 0) throw invalid('plan.steps is empty');
    plan.steps.forEach((weight, i) => {
      if (!(weight > 0 && weight <= 100)) throw invalid(`plan.steps[${i}] ${weight} is not above 0 and at most 100`);
      if (i > 0 && weight <= plan.steps[i - 1]) throw invalid(`plan.steps must increase, but ${weight} follows ${plan.steps[i - 1]}`);
    });
  }
}

function describeStart(spec: RolloutSpec): string {
  const parts = [`stable ${spec.stable}`];
  if (spec.canary) parts.push(`canary ${spec.canary.version} at ${spec.plan ? spec.plan.steps[0] : spec.canary.weight}%`);
  if (spec.rules.length > 0) parts.push(`${spec.rules.length} header rule(s)`);
  if (spec.shadow) parts.push(`shadow ${spec.shadow.version} at ${spec.shadow.percent}%`);
  if (spec.plan) parts.push(`plan ${spec.plan.steps.join(' -> ')}`);
  return parts.join(', ');
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

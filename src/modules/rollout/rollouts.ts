import { Injectable, Logger } from '@nestjs/common';
import { Rollout, type RequestOutcome, type RolloutDecision, type RolloutSnapshot, type RolloutSpec, type RouteChoice } from '../../domain/rollout/rollout.js';
import { TrafficRouter } from '../../domain/rollout/traffic-router.port.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { ModelLifecycle } from '../registry/manage-model-versions/model-lifecycle.js';
import { ModelCatalog } from '../../domain/registry/model-catalog.port.js';
import { ModelStates, notMade } from '../registry/model-states.js';

/**
 * The rollouts of every model: routing each request that names no version, counting how each
 * version does, and every change (start, step, promote, roll back, abort, a version leaving)
 * saved with the model's state, then published, then logged with its figures.
 *
 * A rollout saved before a restart is restored the first time its model is asked about once the
 * repository has loaded (versions it names that did not come back are taken out of routing).
 */
@Injectable()
export class Rollouts extends TrafficRouter {
  private readonly logger = new Logger('Rollout');
  private readonly rollouts = new Map<string, Rollout>();
  /** Models whose saved rollout (if any) has been looked at: names the registry knows, never a client's guess. */
  private readonly restored = new Set<string>();

  constructor(
    private readonly registry: ModelCatalog,
    private readonly states: ModelStates,
    private readonly lifecycle: ModelLifecycle,
    private readonly events: DomainEventBus,
  ) {
    super();
  }

  route(modelName: string, header: (name: string) => string | undefined): RouteChoice | undefined {
    return this.find(modelName)?.route(header, Math.random);
  }

  recordOutcome(modelName: string, version: number, outcome: RequestOutcome): void {
    this.rollouts.get(modelName)?.recordOutcome(version, outcome);
  }

  find(modelName: string): Rollout | undefined {
    // Only a model the registry knows is remembered: any client may name any model (issue 15).
    if (!this.restored.has(modelName) && !this.registry.isLoading && this.registry.find(modelName)) this.restore(modelName);
    return this.rollouts.get(modelName);
  }

  /** How many model names the rollouts remember (at most the models the registry has known). */
  get rememberedModels(): number {
    return this.restored.size;
  }

  get(modelName: string): Rollout {
    this.registry.get(modelName);
    const rollout = this.find(modelName);
    if (!rollout) throw new DomainError('ROLLOUT.NOT_FOUND', `model '${modelName}' has no rollout`);
    return rollout;
  }

  /** Every rollout in memory (the progress controller walks them). */
  all(): Rollout[] {
    return [...this.rollouts.values()];
  }

  /** Replaces the model's rollout with a new one; the versions it names must be READY. */
  async start(modelName: string, spec: RolloutSpec): Promise<Rollout> {
    const model = this.registry.get(modelName);
    const rollout = Rollout.start(modelName, spec, (version) => model.versions.some((v) => v.version === version && v.isReady), new Date());
    await this.lifecycle.saveRollout(modelName, rollout.snapshot()).catch((error: unknown) => {
      throw notMade(`the rollout of model '${modelName}'`, error, 'routing is as before');
    });
    this.rollouts.set(modelName, rollout);
    this.restored.add(modelName);
    this.published(rollout, rollout.history[rollout.history.length - 1]);
    return rollout;
  }

  async promote(modelName: string): Promise<Rollout> {
    const rollout = this.get(modelName);
    const before = rollout.snapshot();
    await this.changed(rollout, rollout.promote(new Date()), before);
    return rollout;
  }

  async abort(modelName: string): Promise<Rollout> {
    const rollout = this.get(modelName);
    const before = rollout.snapshot();
    await this.changed(rollout, rollout.abort(new Date()), before);
    return rollout;
  }

  /**
   * Runs one evaluation of the model's progressive plan; a decision is saved and acted on. An
   * advance or a promotion that cannot be saved is undone (the step is judged again later); a roll
   * back stands, saved or not: the canary is not given traffic again because a disk is full.
   */
  async evaluate(rollout: Rollout, now: Date): Promise<void> {
    const before = rollout.snapshot();
    const decision = rollout.evaluate(now);
    if (decision) await this.changed(rollout, decision, decision.action === 'rolled_back' ? undefined : before);
  }

  /** A version left service: routing stops using it at once, and the change is saved. */
  async versionUnavailable(modelName: string, version: number, reason: string): Promise<void> {
    const rollout = this.find(modelName);
    const decision = rollout?.versionUnavailable(version, reason, new Date());
    if (rollout && decision) await this.changed(rollout, decision);
  }

  /** A version's circuit breaker opened: a canary rolls back, a shadow or rule version leaves routing. */
  async versionFailing(modelName: string, version: number, reason: string): Promise<void> {
    const rollout = this.find(modelName);
    const decision = rollout?.versionFailing(version, reason, new Date());
    if (rollout && decision) await this.changed(rollout, decision);
  }

  /**
   * Saves, publishes and logs a decision already applied in memory (routing follows it from the
   * next request). A promotion is saved with the hot swap that makes the new stable version the
   * model's default version, in one write (versions the model's policy no longer keeps are then
   * drained and unloaded). With `before` (the rollout before the decision), a decision that
   * cannot be saved (or a promotion whose swap fails) is undone: the rollout is as it was, and the
   * error says so.
   */
  private async changed(rollout: Rollout, decision: RolloutDecision, before?: RolloutSnapshot): Promise<void> {
    try {
      if (decision.action === 'promoted') await this.lifecycle.makeDefault(rollout.modelName, rollout.spec.stable, rollout.snapshot());
      else await this.lifecycle.saveRollout(rollout.modelName, rollout.snapshot());
    } catch (error) {
      if (!before) throw error;
      // Undone: the rollout as it was (the current step's figures start over).
      this.rollouts.set(rollout.modelName, Rollout.restore(before));
      throw notMade(`the rollout of model '${rollout.modelName}' (${decision.action})`, error, 'the rollout is as it was');
    }
    this.published(rollout, decision);
  }

  private published(rollout: Rollout, decision: RolloutDecision): void {
    this.events.publish(rollout.pullDomainEvents());
    const line = { model: rollout.modelName, action: decision.action, step: decision.step, weight: decision.weight, figures: decision.figures };
    const level = decision.action === 'rolled_back' || decision.action === 'stopped' || decision.action === 'version_removed' ? 'warn' : 'log';
    this.logger[level]({ msg: `rollout of '${rollout.modelName}': ${decision.action}: ${decision.reason}`, ...line });
  }

  private restore(modelName: string): void {
    this.restored.add(modelName);
    const snapshot = this.states.stateOf(modelName)?.rollout;
    const model = this.registry.find(modelName);
    if (!snapshot || !model) return;
    let rollout: Rollout;
    try {
      rollout = Rollout.restore(snapshot as RolloutSnapshot);
    } catch (error) {
      this.logger.error(`the saved rollout of '${modelName}' could not be restored and is ignored: ${(error as Error).message}`);
      return;
    }
    this.rollouts.set(modelName, rollout);
    const spec = rollout.spec;
    const named = [spec.stable, spec.canary?.version, spec.shadow?.version, ...spec.rules.map((rule) => rule.version)];
    for (const version of new Set(named)) {
      if (version === undefined || model.versions.some((v) => v.version === version && v.isReady)) continue;
      void this.versionUnavailable(modelName, version, 'not loaded after the restart').catch((error: Error) =>
        this.logger.error(`the rollout of '${modelName}' could not be saved: ${error.message}`),
      );
    }
    this.logger.log(`rollout of '${modelName}' restored: ${rollout.phase}${rollout.step !== undefined ? ` at step ${rollout.step} (${rollout.canaryWeight}%)` : ''}`);
  }
}

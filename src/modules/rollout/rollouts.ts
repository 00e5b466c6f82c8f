import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Rollout, type RequestOutcome, type RolloutDecision, type RolloutSample, type RolloutSnapshot, type RolloutSpec, type RouteChoice } from '../../domain/rollout/rollout.js';
import { RolloutRepository, type StoredRollout } from '../../domain/rollout/rollout-repository.port.js';
import { StableVersionSwitch } from '../../domain/rollout/stable-version-switch.port.js';
import { TrafficRouter } from '../../domain/rollout/traffic-router.port.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { DomainError, notMade } from '../../domain/shared/domain-error.js';
import { OperationLocks } from '../../domain/shared/operation-locks.port.js';
import { ModelCatalog } from '../../domain/registry/model-catalog.port.js';
import { PerKeyQueue } from '../../domain/shared/per-key-queue.js';

/**
 * The rollouts of every model: routing each request that names no version, counting how each
 * version does, and every change (start, step, promote, roll back, abort, a version leaving)
 * saved in the rollout store, then published, then logged with its figures.
 *
 * Changes to one model's rollout run one at a time: queued here, and under the rollout's lock
 * across the servers sharing the store, each first catching up with the stored rollout. A change
 * another server saved is followed (the store's change notification).
 *
 * A rollout saved before a restart is restored the first time its model is asked about once the
 * repository has loaded (versions it names that did not come back are taken out of routing).
 */
@Injectable()
export class Rollouts extends TrafficRouter implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Rollout');
  private readonly rollouts = new Map<string, Rollout>();
  /** Models whose saved rollout (if any) has been looked at: names the registry knows, never a client's guess. */
  private readonly restored = new Set<string>();
  /** The rollouts read from the store at start, until their model is first asked about. */
  private saved = new Map<string, StoredRollout>();
  /** Per model, the revision of its stored rollout that this server last read or wrote. */
  private readonly revisions = new Map<string, number>();
  /** One change of a model at a time on this server. */
  private readonly queues = new PerKeyQueue();
  private unwatch?: () => void;

  constructor(
    private readonly registry: ModelCatalog,
    private readonly repository: RolloutRepository,
    private readonly stableSwitch: StableVersionSwitch,
    private readonly locks: OperationLocks,
    private readonly events: DomainEventBus,
  ) {
    super();
  }

  async onApplicationBootstrap(): Promise<void> {
    this.unwatch = this.repository.watch(({ modelName, stored }) => {
      if (stored) void this.queues.run(modelName, async () => this.follow(modelName, stored));
    });
    try {
      this.saved = new Map((await this.repository.loadAll()).map((stored) => [stored.snapshot.modelName, stored]));
    } catch (error) {
      this.logger.error(`the saved rollouts cannot be read (${(error as Error).message}): none is resumed until the store answers`);
    }
  }

  onApplicationShutdown(): void {
    this.unwatch?.();
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
  start(modelName: string, spec: RolloutSpec): Promise<Rollout> {
    return this.exclusive(modelName, async () => {
      const model = this.registry.get(modelName);
      const rollout = Rollout.start(modelName, spec, (version) => model.versions.some((v) => v.version === version && v.isReady), new Date());
      await this.save(rollout.snapshot()).catch((error: unknown) => {
        throw notMade(`the rollout of model '${modelName}'`, error, 'routing is as before');
      });
      this.rollouts.set(modelName, rollout);
      this.restored.add(modelName);
      this.published(rollout, rollout.history[rollout.history.length - 1]!);
      return rollout;
    });
  }

  promote(modelName: string): Promise<Rollout> {
    return this.exclusive(modelName, async () => {
      const rollout = this.get(modelName);
      const before = rollout.snapshot();
      await this.changed(rollout, rollout.promote(new Date()), before);
      return this.get(modelName);
    });
  }

  abort(modelName: string): Promise<Rollout> {
    return this.exclusive(modelName, async () => {
      const rollout = this.get(modelName);
      const before = rollout.snapshot();
      await this.changed(rollout, rollout.abort(new Date()), before);
      return this.get(modelName);
    });
  }

  /**
   * Runs one evaluation of the model's progressive plan on `rollout`'s figures; a decision is
   * saved and acted on. An advance or a promotion that cannot be saved is undone (the step is
   * judged again later); a roll back stands, saved or not: the canary is not given traffic again
   * because a disk is full. `others`: what the other replicas counted of the step. Nothing is
   * decided when the stored rollout moved on meanwhile (another server decided).
   */
  evaluate(rollout: Rollout, now: Date, others: readonly RolloutSample[] = []): Promise<void> {
    const modelName = rollout.modelName;
    return this.exclusive(modelName, async () => {
      if (this.rollouts.get(modelName) !== rollout) return;
      const before = rollout.snapshot();
      const decision = rollout.evaluate(now, others);
      if (decision) await this.changed(rollout, decision, decision.action === 'rolled_back' ? undefined : before);
    });
  }

  /** A version left service: routing stops using it at once, and the change is saved. */
  versionUnavailable(modelName: string, version: number, reason: string): Promise<void> {
    return this.decideAtOnce(modelName, (rollout) => rollout.versionUnavailable(version, reason, new Date()));
  }

  /** A version's circuit breaker opened: a canary rolls back, a shadow or rule version leaves routing. */
  versionFailing(modelName: string, version: number, reason: string): Promise<void> {
    return this.decideAtOnce(modelName, (rollout) => rollout.versionFailing(version, reason, new Date()));
  }

  /**
   * A decision routing must follow at once (a version that can no longer serve), before it is
   * saved in the model's turn. In its turn it is taken again on the rollout as stored (another
   * server may have taken it already, then there is nothing to save).
   */
  private async decideAtOnce(modelName: string, decide: (rollout: Rollout) => RolloutDecision | undefined): Promise<void> {
    const rollout = this.find(modelName);
    if (!rollout) return;
    const decision = decide(rollout);
    await this.exclusive(modelName, async () => {
      const current = this.find(modelName);
      if (!current) return;
      const made = decide(current) ?? (current === rollout ? decision : undefined);
      if (made) await this.changed(current, made);
    });
  }

  /**
   * Saves, publishes and logs a decision already applied in memory (routing follows it from the
   * next request). A promotion first makes the new stable version the model's default version
   * (the hot swap, saved with the model's state; versions the model's policy no longer keeps are
   * then drained and unloaded). With `before` (the rollout before the decision), a decision that
   * cannot be saved (or a promotion whose swap fails) is undone: the rollout is as it was, and the
   * error says so.
   */
  private async changed(rollout: Rollout, decision: RolloutDecision, before?: RolloutSnapshot): Promise<void> {
    try {
      if (decision.action === 'promoted') await this.stableSwitch.makeDefault(rollout.modelName, rollout.spec.stable);
      await this.save(rollout.snapshot());
    } catch (error) {
      if (!before) throw error;
      // Undone: the rollout as it was (the current step's figures start over).
      this.rollouts.set(rollout.modelName, Rollout.restore(before));
      throw notMade(`the rollout of model '${rollout.modelName}' (${decision.action})`, error, 'the rollout is as it was');
    }
    this.published(rollout, decision);
  }

  /** Stores the snapshot as the next revision; a store failure is REGISTRY.STATE_NOT_SAVED (nothing saved). */
  private async save(snapshot: RolloutSnapshot): Promise<void> {
    const modelName = snapshot.modelName;
    let stored: StoredRollout;
    try {
      stored = await this.repository.save(snapshot, this.revisions.get(modelName) ?? 0);
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw new DomainError('REGISTRY.STATE_NOT_SAVED', `the state of model '${modelName}' could not be saved: ${(error as Error).message}`);
    }
    this.revisions.set(modelName, stored.revision);
    this.saved.delete(modelName);
  }

  private published(rollout: Rollout, decision: RolloutDecision): void {
    this.events.publish(rollout.pullDomainEvents());
    const line = { model: rollout.modelName, action: decision.action, step: decision.step, weight: decision.weight, figures: decision.figures };
    const level = decision.action === 'rolled_back' || decision.action === 'stopped' || decision.action === 'version_removed' ? 'warn' : 'log';
    this.logger[level]({ msg: `rollout of '${rollout.modelName}': ${decision.action}: ${decision.reason}`, ...line });
  }

  /** A rollout another server saved: routing follows it from the next request (the step's figures start over here). */
  private follow(modelName: string, stored: StoredRollout): void {
    if (stored.revision <= (this.revisions.get(modelName) ?? 0)) return;
    if (!this.restored.has(modelName) && (this.registry.isLoading || !this.registry.find(modelName))) {
      this.saved.set(modelName, stored); // restored when the model is first asked about
      return;
    }
    try {
      this.rollouts.set(modelName, Rollout.restore(stored.snapshot));
      this.restored.add(modelName);
      this.revisions.set(modelName, stored.revision);
    } catch (error) {
      this.logger.error(`the stored rollout of '${modelName}' (revision ${stored.revision}) could not be followed: ${(error as Error).message}`);
    }
  }

  /** Catches up with the stored rollout, when another server saved a newer one. */
  private async catchUp(modelName: string): Promise<void> {
    const stored = await this.repository.load(modelName);
    if (stored) this.follow(modelName, stored);
  }

  private restore(modelName: string): void {
    this.restored.add(modelName);
    const stored = this.saved.get(modelName);
    const model = this.registry.find(modelName);
    if (!stored || !model) return;
    this.revisions.set(modelName, stored.revision);
    let rollout: Rollout;
    try {
      rollout = Rollout.restore(stored.snapshot);
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

  /** One change of the model's rollout at a time: here (the queue) and across servers (the lock), caught up first. */
  private exclusive<T>(modelName: string, operation: () => Promise<T>): Promise<T> {
    return this.queues.run(modelName, () =>
      this.locks.run(`rollout/${modelName}`, async () => {
        await this.catchUp(modelName);
        return operation();
      }),
    );
  }
}

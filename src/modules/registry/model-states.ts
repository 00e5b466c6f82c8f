import { Injectable } from '@nestjs/common';
import { ModelStateStore, type ModelState } from '../../domain/registry/model-state-store.port.js';
import type { Model } from '../../domain/registry/model.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { DomainError } from '../../domain/shared/domain-error.js';

/**
 * What the registry saves of each model and when: after every change an operator makes, the
 * model's state is written (compare-and-set on the revision last read or written), then the
 * model's events are published, never before.
 */
@Injectable()
export class ModelStates {
  private readonly stored = new Map<string, { revision: number; state: ModelState }>();

  constructor(
    private readonly store: ModelStateStore,
    private readonly events: DomainEventBus,
  ) {}

  /** Reads every stored state; called once at start, before the repository loads. */
  async restore(): Promise<ReadonlyMap<string, ModelState>> {
    for (const { state, revision } of await this.store.loadAll()) this.stored.set(state.name, { state, revision });
    return new Map([...this.stored].map(([name, { state }]) => [name, state]));
  }

  stateOf(name: string): ModelState | undefined {
    return this.stored.get(name)?.state;
  }

  /** Saves the model as it is now (with what the operator set), then publishes its events. */
  async save(model: Model, changes: Partial<Pick<ModelState, 'configOverride' | 'unloadedVersions' | 'explicitVersions' | 'rollout'>> = {}): Promise<void> {
    const previous = this.stored.get(model.name);
    let state: ModelState = {
      name: model.name,
      loadedVersions: model.readyVersions.map((v) => v.version).sort((a, b) => a - b),
      unloadedVersions: changes.unloadedVersions ?? previous?.state.unloadedVersions ?? [],
      defaultVersion: model.defaultVersion,
      configOverride: 'configOverride' in changes ? changes.configOverride : previous?.state.configOverride,
    };
    const explicitVersions = changes.explicitVersions ?? previous?.state.explicitVersions ?? [];
    if (explicitVersions.length > 0) state = { ...state, explicitVersions: [...explicitVersions].sort((a, b) => a - b) };
    const rollout = 'rollout' in changes ? changes.rollout : previous?.state.rollout;
    if (rollout !== undefined) state = { ...state, rollout };
    const saved = await this.store.save(state, previous?.revision ?? 0).catch(async (error: unknown) => {
      if (!(error instanceof DomainError) || error.code !== 'REGISTRY.STATE_CONFLICT') throw error;
      // This process is the only writer of the embedded store, so a conflict means an earlier write
      // landed although it reported a failure: catch up with the stored revision and write again.
      // A store shared by replicas will need a merge here instead.
      const stored = (await this.store.loadAll()).find((s) => s.state.name === model.name);
      return this.store.save(state, stored?.revision ?? 0);
    });
    this.stored.set(model.name, saved);
    this.events.publish(model.pullDomainEvents());
  }

  /** Publishes what happened without an operator (start-up loads): nothing to save. */
  publish(model: Model): void {
    this.events.publish(model.pullDomainEvents());
  }
}

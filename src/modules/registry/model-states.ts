import { Injectable } from '@nestjs/common';
import { ModelStateStore, type ModelState, type ModelStateChange, type StoredModelState, type UnreadableModelState } from '../../domain/registry/model-state-store.port.js';
import type { Model } from '../../domain/registry/model.js';
import { DomainEventBus } from '../../domain/shared/domain-event-bus.port.js';
import { DomainError } from '../../domain/shared/domain-error.js';

/** What a save may set besides what the model is now (a change about to take effect): its loaded and default versions. */
export type StateChanges = Partial<Pick<ModelState, 'loadedVersions' | 'defaultVersion'>>;

/**
 * What the registry saves of each model and when. An operator's change is saved before it takes
 * effect (a save can give the loaded and default versions the change will leave; the operator's
 * intents are the model's own), or undone when its save fails: a save that fails throws
 * REGISTRY.STATE_NOT_SAVED. Saves are compare-and-set on the revision last read or written; the
 * model's events are published after a save, never before.
 */
@Injectable()
export class ModelStates {
  /** Per model: the stored revision, and the state applied (absent: none, or one that could not be applied). */
  private readonly stored = new Map<string, { revision: number; state?: ModelState }>();

  constructor(
    private readonly store: ModelStateStore,
    private readonly events: DomainEventBus,
  ) {}

  /**
   * Reads every stored state; called once at start, before the repository loads. `knownNames`
   * (the repository's models) lets the store say whose state an unreadable one was.
   */
  async restore(knownNames: readonly string[]): Promise<{ states: ReadonlyMap<string, ModelState>; unreadable: readonly UnreadableModelState[] }> {
    const { states, unreadable } = await this.store.loadAll(knownNames);
    for (const { state, revision } of states) this.stored.set(state.name, { state, revision });
    return { states: new Map(states.map(({ state }) => [state.name, state])), unreadable };
  }

  stateOf(name: string): ModelState | undefined {
    return this.stored.get(name)?.state;
  }

  /** The revision of the model's state this server last read or wrote (0: none). */
  revisionOf(name: string): number {
    return this.stored.get(name)?.revision ?? 0;
  }

  /** The stored state of one model now, read from the store (another server may have written it). */
  read(name: string): Promise<StoredModelState | undefined> {
    return this.store.load(name);
  }

  /** A state written by another server that this one has now applied (or the model's removal). */
  applied(name: string, stored: StoredModelState | undefined): void {
    if (stored) this.stored.set(name, { revision: stored.revision, state: stored.state });
    else this.stored.delete(name);
  }

  /** Calls `listener` with every change of the stored states (see ModelStateStore.watch). */
  watch(listener: (change: ModelStateChange) => void): () => void {
    return this.store.watch(listener);
  }

  /** The model's saved state could not be applied: it starts without one (its next save replaces it). */
  discard(name: string): void {
    const stored = this.stored.get(name);
    if (stored) this.stored.set(name, { revision: stored.revision });
  }

  /**
   * Saves the model with what the operator set (`changes`; loaded and default versions as the
   * model has them unless given), then publishes its events. Throws REGISTRY.STATE_NOT_SAVED
   * (nothing saved) when the store fails.
   */
  async save(model: Model, changes: StateChanges = {}): Promise<void> {
    const previous = this.stored.get(model.name);
    const loaded = changes.loadedVersions ?? model.readyVersions.map((v) => v.version);
    const { unloadedVersions, explicitVersions, configOverride } = model.intents;
    const defaultVersion = 'defaultVersion' in changes ? changes.defaultVersion : model.defaultVersion;
    const state: ModelState = {
      name: model.name,
      loadedVersions: [...loaded].sort((a, b) => a - b),
      unloadedVersions,
      ...(explicitVersions.length > 0 && { explicitVersions }),
      ...(defaultVersion !== undefined && { defaultVersion }),
      ...(configOverride !== undefined && { configOverride }),
    };
    let saved;
    try {
      saved = await this.store.save(state, previous?.revision ?? 0).catch(async (error: unknown) => {
        if (!(error instanceof DomainError) || error.code !== 'REGISTRY.STATE_CONFLICT') throw error;
        // Changes are made under the model's lock (across replicas too), each after catching up with
        // the stored state, so a conflict means an earlier write of this server landed although it
        // reported a failure (a timeout): catch up with the stored revision and write again.
        const stored = await this.store.load(model.name);
        return this.store.save(state, stored?.revision ?? 0);
      });
    } catch (error) {
      // A conflict, or a shared store that cannot be reached, says so itself.
      if (error instanceof DomainError) throw error;
      throw new DomainError('REGISTRY.STATE_NOT_SAVED', `the state of model '${model.name}' could not be saved: ${(error as Error).message}`);
    }
    this.stored.set(model.name, saved);
    this.events.publish(model.pullDomainEvents());
  }

  /**
   * Forgets the state of a model that did not come to be (an upload of a new model that was
   * refused) or that left the repository.
   */
  async forget(name: string): Promise<void> {
    const stored = this.stored.get(name);
    if (!stored) return;
    await this.store.remove(name, stored.revision);
    this.stored.delete(name);
  }

  /** The models whose states were restored at start (with those saved since). */
  get names(): string[] {
    return [...this.stored.keys()];
  }

  /** Publishes what happened without a save (start-up loads, or what a change did once saved). */
  publish(model: Model): void {
    this.events.publish(model.pullDomainEvents());
  }
}

import { ModelStateStore, type ModelState, type ModelStateChange, type StoredModelState, type StoredModelStates } from '../../../src/domain/registry/model-state-store.port.js';
import type { RolloutSnapshot } from '../../../src/domain/rollout/rollout.js';
import { RolloutRepository, type RolloutChange, type StoredRollout } from '../../../src/domain/rollout/rollout-repository.port.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';

/**
 * A model-state store in memory, compare-and-set like the real ones, notifying its watchers of
 * every change; several "servers" may share one. `log` records saves in order.
 */
export class InMemoryModelStateStore extends ModelStateStore {
  readonly states = new Map<string, StoredModelState>();
  readonly log: string[];
  private readonly listeners = new Set<(change: ModelStateChange) => void>();
  failNext?: Error;
  private failures = 0;

  constructor(log: string[] = []) {
    super();
    this.log = log;
  }

  /** The next `count` saves fail (a full disk). */
  failingSaves(count: number): this {
    this.failures = count;
    return this;
  }

  stateOf(name: string): ModelState | undefined {
    return this.states.get(name)?.state;
  }

  async loadAll(): Promise<StoredModelStates> {
    return { states: [...this.states.values()], unreadable: [] };
  }

  async load(name: string): Promise<StoredModelState | undefined> {
    return this.states.get(name);
  }

  async save(state: ModelState, expectedRevision: number): Promise<StoredModelState> {
    if (this.failNext) {
      const error = this.failNext;
      this.failNext = undefined;
      throw error;
    }
    if (this.failures > 0) {
      this.failures--;
      throw new Error('the disk is full');
    }
    const current = this.states.get(state.name)?.revision ?? 0;
    if (current !== expectedRevision) throw new DomainError('REGISTRY.STATE_CONFLICT', `revision ${current}, not ${expectedRevision}`);
    const stored = { state, revision: current + 1 };
    this.states.set(state.name, stored);
    this.log.push(`saved r${stored.revision}`);
    for (const listener of this.listeners) listener({ name: state.name, stored });
    return stored;
  }

  async remove(name: string, expectedRevision: number): Promise<void> {
    const current = this.states.get(name)?.revision ?? 0;
    if (current !== expectedRevision) throw new DomainError('REGISTRY.STATE_CONFLICT', `revision ${current}, not ${expectedRevision}`);
    this.states.delete(name);
    this.log.push(`removed ${name}`);
    for (const listener of this.listeners) listener({ name });
  }

  watch(listener: (change: ModelStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** A rollout store in memory, compare-and-set, notifying its watchers. */
export class InMemoryRolloutRepository extends RolloutRepository {
  readonly rollouts = new Map<string, StoredRollout>();
  private readonly listeners = new Set<(change: RolloutChange) => void>();
  failing = false;

  async loadAll(): Promise<readonly StoredRollout[]> {
    return [...this.rollouts.values()];
  }

  async load(modelName: string): Promise<StoredRollout | undefined> {
    return this.rollouts.get(modelName);
  }

  async save(snapshot: RolloutSnapshot, expectedRevision: number): Promise<StoredRollout> {
    if (this.failing) throw new Error('ENOSPC: no space left on device (write)');
    const current = this.rollouts.get(snapshot.modelName)?.revision ?? 0;
    if (current !== expectedRevision) throw new DomainError('REGISTRY.STATE_CONFLICT', `revision ${current}, not ${expectedRevision}`);
    const stored = { snapshot: JSON.parse(JSON.stringify(snapshot)) as RolloutSnapshot, revision: current + 1 };
    this.rollouts.set(snapshot.modelName, stored);
    for (const listener of this.listeners) listener({ modelName: snapshot.modelName, stored });
    return stored;
  }

  watch(listener: (change: RolloutChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { ModelStateChange } from '../../../domain/registry/model-state-store.port.js';
import { ModelLifecycle } from '../manage-model-versions/model-lifecycle.js';
import { ModelRegistry } from '../model-registry.js';
import { ModelStates } from '../model-states.js';

/**
 * Every model state saved by another server sharing the store (replicas on Redis; another process
 * on the same STATE_DIR) is applied here too: loads, unloads, swaps, configuration overrides and
 * uploads (ModelLifecycle.follow). This server's own saves come back too and are skipped by their
 * revision. Changes seen while the repository is still loading are applied once it has loaded.
 */
@Injectable()
export class FollowSavedModelStates implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('ModelLifecycle');
  private unwatch?: () => void;

  constructor(
    private readonly states: ModelStates,
    private readonly registry: ModelRegistry,
    private readonly lifecycle: ModelLifecycle,
  ) {}

  onApplicationBootstrap(): void {
    this.unwatch = this.states.watch((change) => void this.follow(change));
  }

  onApplicationShutdown(): void {
    this.unwatch?.();
  }

  private async follow({ name, stored }: ModelStateChange): Promise<void> {
    await this.registry.loaded;
    await this.lifecycle.follow(name, stored).catch((error: Error) => this.logger.error(`model '${name}': the state another server saved could not be applied: ${error.message}`));
  }
}

import type { OnApplicationShutdown } from '@nestjs/common';
import type { ModelStateStore } from '../../domain/registry/model-state-store.port.js';
import type { RolloutRepository } from '../../domain/rollout/rollout-repository.port.js';
import type { Leadership } from '../../domain/shared/leadership.port.js';
import type { OperationLocks } from '../../domain/shared/operation-locks.port.js';
import type { AppConfig } from '../config/app-config.js';
import { SingleServerLeadership } from '../single-server/single-server-leadership.js';
import { SingleServerLocks } from '../single-server/single-server-locks.js';
import { SingleServerRolloutFigures } from '../single-server/single-server-rollout-figures.js';
import { RedisRolloutFigures } from '../redis/redis-rollout-figures.js';
import type { RolloutFigures } from '../../domain/rollout/rollout-figures.port.js';
import { RedisConnection } from '../redis/redis-connection.js';
import { RedisLeadership } from '../redis/redis-leadership.js';
import { RedisOperationLocks } from '../redis/redis-operation-locks.js';
import { RedisModelStateStore, RedisRolloutRepository } from '../redis/redis-state-stores.js';
import { FileModelStateStore } from './file-model-state-store.js';
import { FileRolloutRepository } from './file-rollout-repository.js';

/**
 * Where the state of the registry and the rollouts lives, chosen by the configuration: files in
 * STATE_DIR for one server (the default: nothing else to run), or the Redis at REDIS_URL that
 * replicas share, with its locks and its leader election.
 */
export class StateBackend implements OnApplicationShutdown {
  private constructor(
    readonly modelStates: ModelStateStore,
    readonly rollouts: RolloutRepository,
    readonly locks: OperationLocks,
    readonly leadership: Leadership,
    readonly rolloutFigures: RolloutFigures,
    private readonly redis?: RedisConnection,
  ) {}

  static from(config: AppConfig): StateBackend {
    if (config.REDIS_URL === undefined) {
      return new StateBackend(new FileModelStateStore(config.STATE_DIR), new FileRolloutRepository(config.STATE_DIR), new SingleServerLocks(), new SingleServerLeadership(), new SingleServerRolloutFigures());
    }
    const redis = new RedisConnection(config.REDIS_URL, config.REDIS_KEY_PREFIX);
    const leadership = new RedisLeadership(redis, Math.max(3 * config.ROLLOUT_EVALUATION_INTERVAL_MS, 1000));
    return new StateBackend(
      new RedisModelStateStore(redis),
      new RedisRolloutRepository(redis),
      // An operation may wait for another replica's (a model load) for as long as a request may take.
      new RedisOperationLocks(redis, { ttlMs: config.REDIS_LOCK_TTL_MS, waitMs: config.MAX_REQUEST_TIMEOUT_MS }),
      // The judge renews its lease at each evaluation; it lapses after three missed ones.
      leadership,
      // A replica leaves its figures at each evaluation; those of a replica gone lapse after a while.
      new RedisRolloutFigures(redis, leadership.id, Math.max(10 * config.ROLLOUT_EVALUATION_INTERVAL_MS, 10_000)),
      redis,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis?.close();
  }
}

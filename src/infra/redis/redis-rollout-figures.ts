import { z } from 'zod';
import type { RolloutSample } from '../../domain/rollout/rollout.js';
import { RolloutFigures } from '../../domain/rollout/rollout-figures.port.js';
import type { RedisConnection } from './redis-connection.js';

const sampleSchema = z.object({
  step: z.string(),
  versions: z.array(
    z.object({
      version: z.number().int().positive(),
      requests: z.number().int().min(0),
      errors: z.number().int().min(0),
      latencies: z.array(z.number()),
      divergenceSum: z.number(),
      divergenceCount: z.number().int().min(0),
    }),
  ),
});

/**
 * Each replica's figures of a rollout's step, in the Redis hash `<prefix>rollout-figures:<model>`
 * (field: the replica's id). The hash expires `ttlMs` after the last sample, so that the figures
 * of replicas that are gone do not stay; within a step they still count (they were served).
 */
export class RedisRolloutFigures extends RolloutFigures {
  constructor(
    private readonly redis: RedisConnection,
    /** This replica's id (its field in the hash). */
    private readonly replica: string,
    private readonly ttlMs: number,
  ) {
    super();
  }

  async publish(modelName: string, sample: RolloutSample): Promise<void> {
    const key = this.key(modelName);
    await this.redis.run(`leaving the figures of the rollout of '${modelName}'`, (redis) => redis.multi().hset(key, this.replica, JSON.stringify(sample)).pexpire(key, this.ttlMs).exec());
  }

  async fromOthers(modelName: string): Promise<readonly RolloutSample[]> {
    const all = await this.redis.run(`reading the figures of the rollout of '${modelName}'`, (redis) => redis.hgetall(this.key(modelName)));
    return Object.entries(all).flatMap(([replica, text]) => {
      if (replica === this.replica) return [];
      try {
        return [sampleSchema.parse(JSON.parse(text))];
      } catch {
        return []; // not a sample this server writes: left out
      }
    });
  }

  private key(modelName: string): string {
    return `${this.redis.prefix}rollout-figures:${modelName}`;
  }
}

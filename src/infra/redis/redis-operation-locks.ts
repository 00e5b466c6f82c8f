import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { DomainError } from '../../domain/shared/domain-error.js';
import { OperationLocks } from '../../domain/shared/operation-locks.port.js';
import type { RedisConnection } from './redis-connection.js';

/** Extends the lock's expiry only while the caller still holds it (its token). */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
/** Releases the lock only if the caller still holds it: a lock that expired and was taken by another server stays theirs. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

interface RedisLockOptions {
  /** How long a lock lives without renewal: a server that dies holding it blocks the others at most this long. */
  readonly ttlMs: number;
  /** The longest an operation waits for a lock that another server holds. */
  readonly waitMs: number;
}

/**
 * Locks shared by the replicas, in Redis: `SET <prefix>lock:<key> <token> NX PX <ttl>`, renewed by
 * the holder every third of the ttl while its operation runs, and released by a script that checks
 * the token (the single-instance pattern of Redis' documentation). A holder that dies (SIGKILL)
 * stops renewing, and its lock expires after the ttl. Redlock's several masters are not needed:
 * the replicas already depend on this one Redis for their state.
 */
export class RedisOperationLocks extends OperationLocks {
  private readonly logger = new Logger('Redis');

  constructor(
    private readonly redis: RedisConnection,
    private readonly options: RedisLockOptions,
  ) {
    super();
  }

  async run<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const lock = `${this.redis.prefix}lock:${key}`;
    const token = randomBytes(16).toString('hex');
    await this.acquire(key, lock, token);
    let renewing = true;
    const renewal = (async () => {
      while (renewing) {
        await sleep(this.options.ttlMs / 3, undefined, { ref: false });
        if (!renewing) return;
        const held = await this.redis.run(`renewing the lock of ${key}`, (redis) => redis.eval(RENEW, 1, lock, token, String(this.options.ttlMs))).catch(() => undefined);
        if (held === 0) this.logger.error(`the lock of ${key} expired while its operation ran: another server may change it meanwhile`);
      }
    })();
    try {
      return await operation();
    } finally {
      renewing = false;
      void renewal;
      // Not released (Redis down): it expires by itself.
      await this.redis.run(`releasing the lock of ${key}`, (redis) => redis.eval(RELEASE, 1, lock, token)).catch(() => undefined);
    }
  }

  private async acquire(key: string, lock: string, token: string): Promise<void> {
    const deadline = Date.now() + this.options.waitMs;
    for (let attempt = 0; ; attempt++) {
      const taken = await this.redis.run(`taking the lock of ${key}`, (redis) => redis.set(lock, token, 'PX', this.options.ttlMs, 'NX'));
      if (taken === 'OK') return;
      if (Date.now() >= deadline) {
        throw new DomainError('REGISTRY.STATE_CONFLICT', `another server has been changing ${key} for over ${this.options.waitMs} ms: retry later`);
      }
      // Held by another server: try again soon (its operation may take a while: a model load).
      await sleep(Math.min(25 * 2 ** Math.min(attempt, 4), 400));
    }
  }
}

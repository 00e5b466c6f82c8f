import { randomBytes } from 'node:crypto';
import { Leadership } from '../../domain/shared/leadership.port.js';
import type { RedisConnection } from './redis-connection.js';

/** Renews the lease if this server holds it, takes it if nobody does; 1 when this server holds it after. */
const LEAD = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`;

/**
 * The election among replicas, in Redis: the lease `<prefix>leader:<duty>` holds the leader's id,
 * and expires `ttlMs` after its last renewal. The leader renews it each time it is about to do its
 * duty (more often than the ttl); when it dies, another server takes the lease at its next try.
 * While Redis is unreachable nobody leads (a duty done twice is worse than one done late).
 */
export class RedisLeadership extends Leadership {
  /** This server's id in the leases. */
  readonly id = randomBytes(12).toString('hex');

  constructor(
    private readonly redis: RedisConnection,
    private readonly ttlMs: number,
  ) {
    super();
  }

  async lead(duty: string): Promise<boolean> {
    const result = await this.redis.run(`leading ${duty}`, (redis) => redis.eval(LEAD, 1, `${this.redis.prefix}leader:${duty}`, this.id, String(this.ttlMs))).catch(() => 0);
    return Number(result) === 1;
  }
}

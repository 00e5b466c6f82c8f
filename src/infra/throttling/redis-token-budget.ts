import type { Redis } from 'ioredis';

/** What one lease from a client's shared bucket gave. */
export interface Lease {
  /** Whole tokens handed to the replica (0: the bucket holds less than one). */
  readonly granted: number;
  /** Whole tokens left in the shared bucket after the grant. */
  readonly remaining: number;
  /** With nothing granted: milliseconds until the bucket holds one token again. */
  readonly retryAfterMs: number;
}

/** The shared side of the rate limit: per-key token buckets that several replicas lease from. */
export interface TokenBudget {
  /** Takes up to `want` whole tokens from the bucket of `key` (size `limit`, filling from empty in `ttlMs`). */
  lease(key: string, ttlMs: number, limit: number, want: number): Promise<Lease>;
}

/**
 * The bucket arithmetic of {@link TokenBucketStorage}, done by Redis in one script so that leases
 * from several replicas never interleave: refill by the time elapsed (Redis's own clock, so the
 * replicas' clocks do not matter), hand out what is asked for or what is left, and let an idle
 * bucket's key expire once it would be full again (a full bucket and no bucket behave the same).
 */
const LEASE_SCRIPT = `
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(stored[1])
local at = tonumber(stored[2])
if tokens == nil or at == nil then
  tokens = limit
  at = now
end
local perMs = limit / ttl
tokens = math.min(limit, tokens + math.max(0, now - at) * perMs)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((limit - tokens) / perMs) + 1000)
local retryAfterMs = 0
if granted == 0 then retryAfterMs = math.ceil((1 - tokens) / perMs) end
return {granted, math.floor(tokens), retryAfterMs}
`;

interface LeaseCommand {
  leaseTokens(key: string, limit: number, ttlMs: number, want: number): Promise<[number, number, number]>;
}

/** The prefix of every key the rate limit keeps in Redis. */
export const THROTTLE_KEY_PREFIX = 'onnx-serving:throttle:';

/** {@link TokenBudget} on Redis (REDIS_URL): one Lua script call (EVALSHA) per lease. */
export class RedisTokenBudget implements TokenBudget {
  private readonly commands: LeaseCommand;

  constructor(redis: Redis) {
    // defineCommand sends the script's SHA and falls back to the whole script once per connection (NOSCRIPT).
    redis.defineCommand('leaseTokens', { numberOfKeys: 1, lua: LEASE_SCRIPT });
    this.commands = redis as unknown as LeaseCommand;
  }

  async lease(key: string, ttlMs: number, limit: number, want: number): Promise<Lease> {
    const [granted, remaining, retryAfterMs] = await this.commands.leaseTokens(`${THROTTLE_KEY_PREFIX}${key}`, limit, ttlMs, want);
    return { granted, remaining, retryAfterMs };
  }
}

import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { DomainError } from '../../domain/shared/domain-error.js';

/** How long one Redis command may take before the caller is answered that Redis is unavailable. */
const COMMAND_TIMEOUT_MS = 2000;

/**
 * The server's connections to the Redis that replicas share (REDIS_URL): one for commands, one
 * for the change notifications it subscribes to. Commands fail at once while Redis is unreachable
 * (no offline queue: an admin call is answered 503 rather than held), and both connections
 * reconnect by themselves; `onConnected` listeners run each time either connection is (back)
 * up, the first time included, so that what was missed meanwhile (or before it first answered)
 * is read again. Nothing on the inference path waits for Redis.
 */
export class RedisConnection {
  private readonly logger = new Logger('Redis');
  readonly commands: Redis;
  readonly subscriber: Redis;
  private readonly handlers = new Map<string, Set<(message: string) => void>>();
  private readonly connectedListeners = new Set<() => void>();
  private down = false;
  private waitedForFirst = false;
  private readonly firstReady: Promise<void>;

  constructor(
    url: string,
    /** Prefix of every key and channel (REDIS_KEY_PREFIX), so that deployments can share one Redis. */
    readonly prefix: string,
  ) {
    const options = {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: COMMAND_TIMEOUT_MS,
      // Reconnect soon, and keep trying: the server goes on serving inference meanwhile.
      retryStrategy: (attempt: number) => Math.min(50 * attempt, 1000),
    };
    this.commands = new Redis(url, options);
    // Resubscribed here, not by ioredis: the listeners are told only once the subscriptions are
    // confirmed, so that no change published between a catch-up read and the subscription is lost.
    this.subscriber = new Redis(url, { ...options, enableOfflineQueue: true, commandTimeout: undefined, autoResubscribe: false });
    this.commands.on('error', (error: Error) => this.wentDown(error));
    this.subscriber.on('error', (error: Error) => this.wentDown(error));
    this.subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.handlers.get(channel) ?? []) handler(message);
    });
    this.firstReady = new Promise((resolve) => this.commands.once('ready', () => resolve()));
    const connected = () => {
      if (this.down) this.logger.log('Redis answers again: catching up with what changed meanwhile');
      this.down = false;
      for (const listener of this.connectedListeners) listener();
    };
    this.commands.on('ready', connected);
    this.subscriber.on('ready', () => {
      const channels = [...this.handlers.keys()];
      if (channels.length === 0) return connected();
      this.subscriber.subscribe(...channels).then(connected, (error: Error) => this.logger.error(`subscribing again failed: ${error.message}`));
    });
  }

  /** Calls `handler` with each message published on `channel` (prefixed) until the returned function is called. */
  subscribe(channel: string, handler: (message: string) => void): () => void {
    const name = this.prefix + channel;
    let handlers = this.handlers.get(name);
    if (!handlers) {
      handlers = new Set();
      this.handlers.set(name, handlers);
      void this.subscriber.subscribe(name).catch((error: Error) => this.logger.error(`subscribing to ${name} failed: ${error.message}`));
    }
    handlers.add(handler);
    return () => handlers.delete(handler);
  }

  /** Calls `listener` each time a connection is up, the first time included (then it may read what it missed). */
  onConnected(listener: () => void): () => void {
    this.connectedListeners.add(listener);
    return () => this.connectedListeners.delete(listener);
  }

  /**
   * Runs `command`; a failure to reach Redis is SERVER.STATE_STORE_UNAVAILABLE naming Redis (503:
   * retry once it is back). Errors Redis answered (a script's refusal) are as they are.
   */
  async run<T>(what: string, command: (redis: Redis) => Promise<T>): Promise<T> {
    if (!this.waitedForFirst) {
      // Just started: give the first connection the time a command has, once, rather than failing at once.
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, COMMAND_TIMEOUT_MS).unref());
      await Promise.race([this.firstReady, timeout]);
      this.waitedForFirst = true;
    }
    try {
      return await command(this.commands);
    } catch (error) {
      if (error instanceof DomainError || (error as Error).name === 'ReplyError') throw error;
      throw unavailable(what, error);
    }
  }

  async close(): Promise<void> {
    this.connectedListeners.clear();
    this.handlers.clear();
    // The subscriber queues commands while disconnected (a QUIT would wait for Redis): just closed.
    this.subscriber.disconnect();
    await this.commands.quit().catch(() => this.commands.disconnect());
  }

  private wentDown(error: Error): void {
    if (this.down) return;
    this.down = true;
    this.logger.error(`Redis (REDIS_URL) is unreachable: ${error.message}; inference goes on, admin changes are refused until it is back`);
  }
}

/** The error of a change that could not be made because Redis could not be reached. */
function unavailable(what: string, error: unknown): DomainError {
  return new DomainError(
    'SERVER.STATE_STORE_UNAVAILABLE',
    `${what} failed: Redis (REDIS_URL), where the replicas keep their shared state, is unreachable (${(error as Error).message}); nothing changed: retry once it is back`,
  );
}
